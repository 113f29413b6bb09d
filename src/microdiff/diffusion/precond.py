"""EDM preconditioning: one denoiser interface D(x, sigma, cond) -> x0 (Karras et al. 2022).

D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), cond) with
c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4, sd = sigma_data.
"""

from __future__ import annotations

import torch
from torch import nn

from ..timing import NETWORK


def sigma_tensor(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma (float, 0-d or (B,) tensor) as a float32 tensor shaped (B, 1, ..., 1) like x."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
    if s.numel() == 1:
        s = s.expand(x.shape[0])
    if s.numel() != x.shape[0]:
        raise ValueError(f"sigma has {s.numel()} entries for a batch of {x.shape[0]}")
    return s.view(-1, *([1] * (x.ndim - 1)))


class Denoiser(nn.Module):
    """EDM-preconditioned network: `D(x, sigma, cond=None)` returns the estimate of x0.

    `net` is called as net(c_in x, c_noise, cond) (a `UNet`). Images are (B, C, [Z,] Y, X)
    float32; sigma is a float or a per-batch tensor.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    @property
    def config(self) -> dict:
        return {"unet": dict(self.net.config), "sigma_data": self.sigma_data}

    def forward(self, x: torch.Tensor, sigma, cond: torch.Tensor | None = None) -> torch.Tensor:
        with NETWORK:
            return self._denoise(x, sigma, cond)

    def _denoise(self, x: torch.Tensor, sigma, cond: torch.Tensor | None) -> torch.Tensor:
        s = sigma_tensor(sigma, x)
        sd = self.sigma_data
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1.0 / (s**2 + sd**2).sqrt()
        c_noise = s.clamp_min(1e-12).log().reshape(-1) / 4
        f = self.net((c_in * x).to(x.dtype), c_noise, cond)
        return c_skip * x + c_out * f.to(x.dtype)
