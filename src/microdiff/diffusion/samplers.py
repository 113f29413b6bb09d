"""Samplers: pure functions over one denoiser interface D(x, sigma, cond) -> x0.

Every sampler has the signature

    sample_xxx(denoiser, x, sigmas, cond=None, generator=None, callback=None, **opts) -> x

where `x` is already at noise level sigmas[0] (the caller draws it, e.g. with `initial_noise`;
for SDEdit the caller noises a start image and truncates the schedule with `sigmas_from`), and
`sigmas` is a decreasing schedule, normally ending at 0. All work in the sigma parameterisation
x_sigma = x0 + sigma eps; the VP samplers (DDPM, VP-SDE) convert to x_vp = sqrt(abar) x_sigma,
abar = 1 / (1 + sigma^2), take their classical step and convert back.

  ddpm            ancestral sampling with the DDPM posterior q(x_prev | x_t, x0_hat)
                  (Ho et al. 2020), posterior or beta variance
  ddim            DDIM with eta (Song, Meng & Ermon 2021); eta = 0 deterministic, eta = 1
                  equals DDPM ancestral in distribution; `ddim_invert` runs it backwards
  euler_maruyama  reverse SDE, Euler-Maruyama, VE or VP (Song et al. 2021, score SDE)
  pc              predictor-corrector: reverse-SDE predictor + Langevin corrector (Song et al.)
  heun            EDM second-order Heun, optional churn (Karras et al. 2022, Alg. 2)
  dpmpp_2m        DPM-Solver++(2M), multistep data prediction (Lu et al. 2022)

Options common to all: `guidance(denoiser, x, sigma, cond) -> x0` replaces each denoiser call
(see `guidance.DPS`, posterior sampling for linear inverse problems, Chung et al. 2023);
`callback(info)` gets a dict (i, x, sigma, sigma_next, denoised) after each step.
Fresh noise comes from `generator` through `noise.draw_noise` with counter
step * DRAWS_PER_STEP + k, so `PositionalNoise` makes tiled sampling seam-free.
The last step to sigma = 0 of the stochastic samplers returns the denoised estimate (Tweedie).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .noise import DRAWS_PER_STEP, draw_noise
from .schedules import check_sigmas


def _denoise(denoiser, x, sigma, cond, guidance):
    if guidance is not None:
        return guidance(denoiser, x, sigma, cond)
    with torch.no_grad():
        return denoiser(x, sigma, cond)


def _noise(generator, x, i, k=0):
    return draw_noise(generator, x, i * DRAWS_PER_STEP + k)


def _report(callback, i, x, s, t, d):
    if callback is not None:
        callback({"i": i, "x": x, "sigma": s, "sigma_next": t, "denoised": d})


def _sigmas(sigmas) -> list[float]:
    return check_sigmas(sigmas).tolist()


def _run(denoiser, x, sigmas, cond, callback, guidance, step):
    """The loop of the one-evaluation-per-step samplers: D at each sigma s, then
    `step(i, x, d, s, t)` to the next sigma t > 0; the step to t = 0 returns D (Tweedie)."""
    sig = _sigmas(sigmas)
    for i, (s, t) in enumerate(zip(sig[:-1], sig[1:])):
        d = _denoise(denoiser, x, s, cond, guidance)
        x_new = d if t == 0 else step(i, x, d, s, t)
        _report(callback, i, x_new, s, t, d)
        x = x_new
    return x


def sample_ddpm(
    denoiser,
    x,
    sigmas,
    cond=None,
    generator=None,
    callback=None,
    guidance=None,
    variance: str = "posterior",
):
    """DDPM ancestral sampling. `variance`: 'posterior' (beta tilde) or 'beta' (upper bound)."""
    if variance not in ("posterior", "beta"):
        raise ValueError(f"variance must be 'posterior' or 'beta', not {variance!r}")

    def step(i, x, d, s, t):
        ab_s, ab_t = 1 / (1 + s * s), 1 / (1 + t * t)
        one_m_ab_s, one_m_ab_t = s * s * ab_s, t * t * ab_t
        beta = (s * s - t * t) * ab_s  # 1 - abar_s / abar_t
        alpha = 1 - beta
        xv = x * math.sqrt(ab_s)
        mean = (math.sqrt(ab_t) * beta / one_m_ab_s) * d + (
            math.sqrt(alpha) * one_m_ab_t / one_m_ab_s
        ) * xv
        var = beta * one_m_ab_t / one_m_ab_s if variance == "posterior" else beta
        xv = mean + math.sqrt(var) * _noise(generator, x, i)
        return xv / math.sqrt(ab_t)

    return _run(denoiser, x, sigmas, cond, callback, guidance, step)


def sample_ddim(
    denoiser, x, sigmas, cond=None, generator=None, callback=None, guidance=None, eta: float = 0.0
):
    """DDIM: x_t = x0 + sqrt(t^2 - c^2) eps_hat + c z, c = eta * t sqrt(s^2 - t^2) / s."""

    def step(i, x, d, s, t):
        eps = (x - d) / s
        c = eta * t * math.sqrt(s * s - t * t) / s
        x_new = d + math.sqrt(max(t * t - c * c, 0.0)) * eps
        if c > 0:
            x_new = x_new + c * _noise(generator, x, i)
        return x_new

    return _run(denoiser, x, sigmas, cond, callback, guidance, step)


def ddim_invert(denoiser, x, sigmas, cond=None, fixed_point_iters: int = 0, guidance=None):
    """Run deterministic DDIM backwards: from x at the schedule's last positive sigma to sigmas[0].

    A schedule ending at 0 is treated as ending at its last positive sigma (the step to 0 maps
    x to D(x) and cannot be inverted). `fixed_point_iters` > 0 solves each implicit step by
    fixed-point iteration, so inversion followed by `sample_ddim` on the same schedule
    round-trips (to iteration tolerance); 0 is the usual explicit approximation.
    """
    sig = [s for s in _sigmas(sigmas) if s > 0]
    for s, t in zip(reversed(sig[:-1]), reversed(sig[1:])):  # t < s: go from t up to s
        d = _denoise(denoiser, x, t, cond, guidance)
        xs = d + (s / t) * (x - d)
        for _ in range(fixed_point_iters):
            d = _denoise(denoiser, xs, s, cond, guidance)
            xs = d + (s / t) * (x - d)
        x = xs
    return x


def _em_step(x, d, s, t, sde, z):
    """One reverse-SDE Euler-Maruyama step from sigma s to t > 0."""
    if sde == "ve":
        g2 = s * s - t * t
        return x + (g2 / (s * s)) * (d - x) + math.sqrt(g2) * z
    ab_s, ab_t = 1 / (1 + s * s), 1 / (1 + t * t)
    beta = (s * s - t * t) * ab_s
    xv = x * math.sqrt(ab_s)
    score = (math.sqrt(ab_s) * d - xv) / (s * s * ab_s)
    xv = xv + 0.5 * beta * xv + beta * score + math.sqrt(beta) * z
    return xv / math.sqrt(ab_t)


def _check_sde(sde):
    if sde not in ("ve", "vp"):
        raise ValueError(f"sde must be 've' or 'vp', not {sde!r}")


def sample_euler_maruyama(
    denoiser, x, sigmas, cond=None, generator=None, callback=None, guidance=None, sde: str = "ve"
):
    """Reverse-time SDE by Euler-Maruyama, VE (dx = sqrt(d sigma^2/dt) dw) or VP: the
    predictor-corrector sampler without corrector steps."""
    return sample_pc(denoiser, x, sigmas, cond, generator, callback, guidance, sde, 0)


def sample_pc(
    denoiser,
    x,
    sigmas,
    cond=None,
    generator=None,
    callback=None,
    guidance=None,
    sde: str = "ve",
    corrector_steps: int = 1,
    snr: float = 0.16,
    adaptive: bool = False,
):
    """Predictor-corrector: an Euler-Maruyama predictor step, then `corrector_steps` Langevin
    steps at the new level, x += e g + sqrt(2e) z with g the score (D - x) / t^2.

    Step size e = 2 (snr t)^2 (default: purely local, safe for tiled sampling), or with
    `adaptive` Song et al.'s e = 2 (snr |z| / |g|)^2 per batch element.
    """
    _check_sde(sde)

    def step(i, x, d, s, t):
        x_new = _em_step(x, d, s, t, sde, _noise(generator, x, i))
        for j in range(corrector_steps):
            g = (_denoise(denoiser, x_new, t, cond, guidance) - x_new) / (t * t)
            z = _noise(generator, x_new, i, 1 + j)
            if adaptive:
                ratio = z.flatten(1).norm(dim=1) / g.flatten(1).norm(dim=1).clamp_min(1e-12)
                e = (2 * (snr * ratio) ** 2).view(-1, *([1] * (x.ndim - 1)))
            else:
                e = torch.tensor(2 * (snr * t) ** 2, dtype=x.dtype, device=x.device)
            x_new = x_new + e * g + (2 * e).sqrt() * z
        return x_new

    return _run(denoiser, x, sigmas, cond, callback, guidance, step)


def sample_heun(
    denoiser,
    x,
    sigmas,
    cond=None,
    generator=None,
    callback=None,
    guidance=None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
):
    """EDM Heun (2nd order); s_churn > 0 adds EDM's stochastic churn."""
    sig = _sigmas(sigmas)
    n = len(sig) - 1
    for i, (s, t) in enumerate(zip(sig[:-1], sig[1:])):
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0
        s_hat = s * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(s_hat**2 - s**2) * s_noise * _noise(generator, x, i)
        d = _denoise(denoiser, x, s_hat, cond, guidance)
        slope = (x - d) / s_hat
        x_new = x + (t - s_hat) * slope
        if t > 0:
            d2 = _denoise(denoiser, x_new, t, cond, guidance)
            x_new = x + (t - s_hat) * 0.5 * (slope + (x_new - d2) / t)
        _report(callback, i, x_new, s, t, d)
        x = x_new
    return x


def sample_dpmpp_2m(denoiser, x, sigmas, cond=None, generator=None, callback=None, guidance=None):
    """DPM-Solver++(2M): second-order multistep in lambda = -log sigma with data prediction.
    The first step is first order (DDIM); the step to sigma = 0 returns the denoised estimate."""
    last = {}  # the previous step's d and h

    def step(i, x, d, s, t):
        h = math.log(s) - math.log(t)
        dd = d
        if last:
            r = last["h"] / h
            dd = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * last["d"]
        last.update(d=d, h=h)
        return (t / s) * x - math.expm1(-h) * dd

    return _run(denoiser, x, sigmas, cond, callback, guidance, step)


SAMPLERS: dict[str, Callable] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "euler_maruyama": sample_euler_maruyama,
    "pc": sample_pc,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
}


def sample(name: str, denoiser, x, sigmas, cond=None, generator=None, callback=None, **opts):
    """Run the sampler called `name` (a key of SAMPLERS)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    return SAMPLERS[name](
        denoiser, x, sigmas, cond=cond, generator=generator, callback=callback, **opts
    )


def nfe(name: str, steps, **opts) -> int:
    """Network evaluations `name` makes for a schedule (a sigma array, or an int number of steps
    of a schedule ending at 0). Guidance adds a backward pass per evaluation, not evaluations."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    if isinstance(steps, int):
        n, ends_at_zero = steps, True
    else:
        sig = check_sigmas(steps)
        n, ends_at_zero = sig.numel() - 1, float(sig[-1]) == 0.0
    positive_targets = n - 1 if ends_at_zero else n
    if name == "heun":
        return n + positive_targets
    if name == "pc":
        return n + int(opts.get("corrector_steps", 1)) * positive_targets
    return n
