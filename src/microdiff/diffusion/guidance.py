"""Posterior sampling for linear inverse problems: DPS-style guidance (Chung et al. 2023).

A guidance is a callable `guidance(denoiser, x, sigma, cond) -> x0` that samplers call instead
of the denoiser. `DPS` evaluates D with autograd and pulls the estimate toward the measurement:

    x0' = D(x) - zeta * grad_x L(x),   L = ||y - A(D(x))||        (normalize=True, as in DPS)
                                       L = ||y - A(D(x))||^2 / 2  (normalize=False)

Norms are per batch element. Because every sampler moves x by about (1 - sigma_next/sigma)
times a change of x0, the total pull over a run is about zeta * ln(sigma_max / sigma_min),
nearly independent of the number of steps (unlike DPS's per-step zeta, which scales with it).
`normalize=False` keeps the guidance local (no per-tile norm), which suits tiled sampling.

Operators A (forward only, no adjoint needed): `Blur` (PSF convolution), `Downsample` (integer
average pooling, super-resolution), `Mask` (inpainting), `Compose`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LinearOperator:
    """A forward model A acting on (B, C, [Z,] Y, X) images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


class Blur(LinearOperator):
    """Convolution of every channel with `psf` ((ky, kx) or (kz, ky, kx), odd sizes), same size
    output, replicate padding at the border."""

    def __init__(self, psf):
        self.psf = torch.as_tensor(psf, dtype=torch.float32)
        if any(k % 2 == 0 for k in self.psf.shape):
            raise ValueError(f"PSF sizes must be odd, got {tuple(self.psf.shape)}")

    def forward(self, x):
        nd = self.psf.ndim
        if x.ndim != nd + 2:
            raise ValueError(f"a {nd}-D PSF needs (B, C, {nd} spatial axes) input")
        c = x.shape[1]
        w = self.psf.to(x).expand(c, 1, *self.psf.shape)
        pad = [p for k in reversed(self.psf.shape) for p in (k // 2, k // 2)]
        xp = F.pad(x, pad, mode="replicate")
        return (F.conv2d if nd == 2 else F.conv3d)(xp, w, groups=c)


class Downsample(LinearOperator):
    """Average pooling by an integer `factor` per spatial axis (int or tuple)."""

    def __init__(self, factor):
        self.factor = factor

    def forward(self, x):
        pool = F.avg_pool2d if x.ndim == 4 else F.avg_pool3d
        return pool(x, self.factor)


class Mask(LinearOperator):
    """Keep the pixels where `mask` is 1 (broadcast against x)."""

    def __init__(self, mask):
        self.mask = torch.as_tensor(mask, dtype=torch.float32)

    def forward(self, x):
        return x * self.mask.to(x)


class Compose(LinearOperator):
    """A = ops[-1] o ... o ops[0]."""

    def __init__(self, *ops: LinearOperator):
        self.ops = ops

    def forward(self, x):
        for op in self.ops:
            x = op(x)
        return x


class DPS:
    """Diffusion posterior sampling guidance for y = A(x0) + noise; pass as `guidance=`."""

    def __init__(
        self, operator: LinearOperator, y: torch.Tensor, zeta: float = 1.0, normalize: bool = True
    ):
        self.operator, self.y, self.zeta, self.normalize = operator, y, float(zeta), normalize

    def __call__(self, denoiser, x, sigma, cond=None):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = denoiser(xg, sigma, cond)
            r = (self.y.to(d) - self.operator(d)).flatten(1)
            loss = r.norm(dim=1).sum() if self.normalize else 0.5 * (r**2).sum()
            (grad,) = torch.autograd.grad(loss, xg)
        return (d - self.zeta * grad).detach()
