"""Analytic optimal denoisers, for tests and benchmarks.

For data x0 ~ N(mu, diag v) and x = x0 + sigma eps, E[x0 | x] = mu + v / (v + sigma^2) (x - mu).
For a mixture of such Gaussians, E[x0 | x] is the posterior-weighted mixture of the components'
means, with weights proportional to w_k N(x; mu_k, v_k + sigma^2).
"""

from __future__ import annotations

import torch

from .precond import sigma_tensor


class GaussianMixtureDenoiser:
    """Optimal denoiser of a diagonal Gaussian mixture over events of shape `means.shape[1:]`.

    Called like a network: D(x, sigma, cond=None) with x of shape (B, *event).
    """

    def __init__(self, weights, means, variances):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.vars = torch.as_tensor(variances, dtype=torch.float64).expand_as(self.means)
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.log_w = (w / w.sum()).log()
        if self.log_w.numel() != self.means.shape[0]:
            raise ValueError("one weight per mixture component")

    def __call__(self, x, sigma, cond=None):
        s2 = sigma_tensor(sigma, x).double().unsqueeze(1) ** 2  # (B, 1, 1...)
        xd = x.double().unsqueeze(1)  # (B, 1, *event)
        mu, v = self.means.unsqueeze(0), self.vars.unsqueeze(0)  # (1, K, *event)
        tot = v + s2
        ll = -0.5 * (((xd - mu) ** 2) / tot + tot.log()).flatten(2).sum(-1) + self.log_w
        r = torch.softmax(ll, dim=1).view(*ll.shape, *([1] * (x.ndim - 1)))
        comp = mu + v / tot * (xd - mu)
        return (r * comp).sum(1).to(x.dtype)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        k = torch.multinomial(self.log_w.exp(), n, replacement=True, generator=generator)
        z = torch.randn((n, *self.means.shape[1:]), generator=generator, dtype=torch.float64)
        return (self.means[k] + self.vars[k].sqrt() * z).float()

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean (D,) and covariance (D, D) of the flattened event."""
        w = self.log_w.exp()
        mu = self.means.flatten(1)
        m = (w[:, None] * mu).sum(0)
        cov = sum(
            wk * (torch.diag(vk) + torch.outer(mk - m, mk - m))
            for wk, mk, vk in zip(w, mu, self.vars.flatten(1))
        )
        return m, cov


class GaussianDenoiser(GaussianMixtureDenoiser):
    """Optimal denoiser of N(mean, diag(var)) data, event shape = mean.shape."""

    def __init__(self, mean, var):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        super().__init__([1.0], mean[None], torch.as_tensor(var, dtype=torch.float64)[None])
