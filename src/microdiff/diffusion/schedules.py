"""Noise schedules as explicit, decreasing arrays of sigmas that end at 0.

Everything is in the EDM "sigma" parameterisation x_sigma = x0 + sigma * eps (Karras et al.
2022). A variance-preserving (VP) DDPM state x_t = sqrt(abar) x0 + sqrt(1 - abar) eps is the same
thing scaled: x_t / sqrt(abar) = x0 + sigma eps with sigma = sqrt((1 - abar) / abar) (Ho et al.
2020; Song et al. 2021, "Denoising Diffusion Implicit Models" and "Score-Based Generative Modeling
through SDEs"). So a DDPM schedule is just another array of sigmas, and every sampler runs on every
schedule.

A schedule of `steps` steps has `steps + 1` entries: `steps` positive sigmas, then a final 0.
Schedules are float64 torch tensors; samplers read them as Python floats.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _finish(sig: np.ndarray) -> torch.Tensor:
    sig = np.asarray(sig, dtype=np.float64)
    return torch.from_numpy(np.concatenate([sig, [0.0]]))


def _check_steps(steps: int) -> int:
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"a schedule needs at least one step, not {steps}")
    return steps


def ddpm_betas(
    T: int = 1000,
    kind: str = "linear",
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    cosine_s: float = 0.008,
) -> np.ndarray:
    """The T betas of discrete DDPM: `linear` (Ho et al. 2020) or `cosine` (Nichol & Dhariwal
    2021, betas clipped at 0.999)."""
    if kind == "linear":
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if kind == "cosine":
        t = np.arange(T + 1, dtype=np.float64) / T
        f = np.cos((t + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        return np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    raise ValueError(f"unknown DDPM beta schedule {kind!r}; use 'linear' or 'cosine'")


def ddpm_alphas_bar(T: int = 1000, kind: str = "linear", **kw) -> np.ndarray:
    """Cumulative products abar_t, t = 0..T-1 (index t is the (t+1)-th forward step)."""
    return np.cumprod(1.0 - ddpm_betas(T, kind, **kw))


def ddpm_timesteps(steps: int, T: int = 1000) -> np.ndarray:
    """`steps` distinct integer timesteps from T-1 down to 0, both ends included.

    Evenly spaced ("linspace" spacing, rounded). The common "leading" spacing never visits T-1 and
    "trailing" never visits 0; this grid always does both (tested).
    """
    steps = _check_steps(steps)
    if steps > T:
        raise ValueError(f"cannot take {steps} distinct steps from a {T}-step DDPM")
    if steps == 1:
        return np.array([T - 1], dtype=np.int64)
    return np.round(np.linspace(T - 1, 0, steps)).astype(np.int64)


def sigma_from_alpha_bar(abar) -> np.ndarray:
    abar = np.asarray(abar, dtype=np.float64)
    return np.sqrt((1.0 - abar) / abar)


def alpha_bar_from_sigma(sigma):
    """abar = 1 / (1 + sigma^2): works on floats, numpy arrays and tensors."""
    return 1.0 / (1.0 + sigma * sigma)


def ddpm_sigmas(steps: int, T: int = 1000, kind: str = "linear", **kw) -> torch.Tensor:
    """Sigmas of a discrete DDPM at `ddpm_timesteps(steps, T)`, then 0."""
    abar = ddpm_alphas_bar(T, kind, **kw)
    return _finish(sigma_from_alpha_bar(abar[ddpm_timesteps(steps, T)]))


def ve_sigmas(steps: int, sigma_min: float = 0.01, sigma_max: float = 80.0) -> torch.Tensor:
    """Geometric VE schedule (Song et al. 2021): sigma_max ... sigma_min, then 0."""
    steps = _check_steps(steps)
    if steps == 1:
        return _finish([sigma_max])
    return _finish(np.geomspace(sigma_max, sigma_min, steps))


def karras_sigmas(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5): sigma_max ... sigma_min spaced in sigma^(1/rho),
    then 0."""
    steps = _check_steps(steps)
    if steps == 1:
        return _finish([sigma_max])
    r = np.linspace(0.0, 1.0, steps)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return _finish((hi + r * (lo - hi)) ** rho)


def get_sigmas(kind: str, steps: int, **kw) -> torch.Tensor:
    """A schedule by name: 'karras' | 've' | 'ddpm' (linear betas) | 'ddpm_cosine'."""
    if kind == "karras":
        return karras_sigmas(steps, **kw)
    if kind == "ve":
        return ve_sigmas(steps, **kw)
    if kind == "ddpm":
        return ddpm_sigmas(steps, **kw)
    if kind == "ddpm_cosine":
        return ddpm_sigmas(steps, kind="cosine", **kw)
    raise ValueError(f"unknown schedule {kind!r}; use karras, ve, ddpm or ddpm_cosine")


def sigmas_from(sigmas: torch.Tensor, sigma_start: float) -> torch.Tensor:
    """Truncate a schedule to start at `sigma_start` (SDEdit, Meng et al. 2022).

    Keeps the schedule's sigmas below `sigma_start` and puts `sigma_start` in front. The caller
    noises its start image to that level: x = x_init + sigma_start * eps.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigma_start <= 0:
        raise ValueError(f"sigma_start must be positive, not {sigma_start}")
    rest = sigmas[sigmas < sigma_start]
    return torch.cat([torch.tensor([float(sigma_start)], dtype=torch.float64), rest])


def check_sigmas(sigmas) -> torch.Tensor:
    """Validate a schedule: 1-D, at least two entries, non-negative, strictly decreasing."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if sigmas.numel() < 2:
        raise ValueError("a schedule needs at least two sigmas (start and end)")
    if bool((sigmas < 0).any()) or not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(f"sigmas must be non-negative and strictly decreasing: {sigmas.tolist()}")
    return sigmas
