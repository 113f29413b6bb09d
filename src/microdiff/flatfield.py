"""BaSiC's estimate of flat-field and dark-field profiles from a stack of images.

BaSiC (Peng et al., Nature Communications 8, 14836, 2017) models every image of an experiment as
`I_i = b_i * S + D + E_i`: a flat-field S shared by all images (smooth: sparse in the 2D DCT), a
per-image baseline b_i, an optional dark-field D (smooth and sparse), and a sparse residual E_i
(the objects). It is a low-rank + sparse decomposition solved by an inexact augmented
Lagrangian method, with the sparse part reweighted a few times (objects get small weights).

This is our own implementation of that estimate (BaSiCPy's "approximate" fit) in numpy/scipy:
BaSiCPy itself pins scipy < 1.13 (and, through hyperactive, pandas < 3), which would downgrade
this package's whole numeric stack, so it is not a dependency. Everything here works on small
arrays: the stack is the experiment's images shrunk to a working size (see `illumination`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft


def _dct(x: np.ndarray) -> np.ndarray:
    return fft.dctn(x, axes=(-2, -1), norm="ortho")


def _idct(x: np.ndarray) -> np.ndarray:
    return fft.idctn(x, axes=(-2, -1), norm="ortho")


def _shrink(x, t):
    """Soft thresholding: the proximal map of t * |x|_1."""
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


@dataclass
class Estimate:
    flatfield: np.ndarray  # (h, w), mean 1
    darkfield: np.ndarray  # (h, w), in the images' units (zeros when not estimated)
    baseline: np.ndarray  # (n,) per-image baseline b_i
    iterations: int  # reweighting rounds run
    converged: bool


def _decompose(D, weight, lam, lam_dark, darkfield, tol, max_iter):
    """One inexact-ALM solve of D (n, h, w) = coeff_i * S + offset + E (E sparse, weighted).

    Returns (low-rank part A, sparse part E, dark-field offset, coeff, flat-field S).
    """
    n = D.shape[0]
    norm_two = np.linalg.norm(D.reshape(n, -1), 2)
    mu, rho = 12.5 / norm_two, 1.5
    mu_bar = mu * 1e7
    d_norm = np.linalg.norm(D)
    ent1, ent2 = 1.0, 10.0
    S_hat = np.zeros(D.shape[1:])
    E = np.zeros_like(D)
    Y = np.zeros_like(D)
    coeff = np.ones(n)
    offset = np.zeros(D.shape[1:])
    b_offset, b_limit = 0.0, float(D.min())
    S = _idct(S_hat)
    for _ in range(max_iter):
        A = coeff[:, None, None] * S + offset
        S_hat = S_hat + _dct(((D - A - E + Y / mu) / ent1).mean(0))
        S_hat = _shrink(S_hat, lam / (ent1 * mu))
        S = _idct(S_hat)
        A = coeff[:, None, None] * S + offset
        E = _shrink(E + (D - A - E + Y / mu) / ent1, weight / (ent1 * mu))
        R = D - E
        coeff = np.maximum(R.mean((1, 2)) / R.mean(), 0.0)
        if darkfield:
            offset, b_offset = _dark_step(R, S, coeff, b_limit, lam_dark / (ent2 * mu))
        Z = D - A - E
        Y = Y + mu * Z
        mu = min(mu * rho, mu_bar)
        if np.linalg.norm(Z) / d_norm < tol:
            break
    # the dark-field: the smooth offset plus the constant the flat-field's baseline carries
    return A, E, offset + b_offset * S, coeff, S


def _dark_step(R, S, coeff, b_limit, t):
    """BaSiC's dark-field update: a constant part fitted from the bright and dim halves of the
    flat-field across images with baselines under 1, and a smooth, sparse remainder."""
    valid = coeff < 1
    if not valid.any():
        return np.zeros_like(S), 0.0
    s_mean = S.mean()
    hi, lo = s_mean - 1e-6 < S, s_mean + 1e-6 > S
    Rv, cv = R[valid], coeff[valid]
    b_coeff = (Rv[:, hi].mean(1) - Rv[:, lo].mean(1)) / R.mean()
    k = len(cv)
    t1, t2, t3, t4 = (cv**2).sum(), cv.sum(), b_coeff.sum(), (cv * b_coeff).sum()
    t5 = t2 * t3 - k * t4
    b_offset = 0.0 if t5 == 0 else (t1 * t3 - t2 * t4) / t5
    b_offset = float(np.clip(b_offset, 0.0, b_limit / max(s_mean, 1e-12)))
    b_part = b_offset * s_mean - b_offset * S
    a_off = Rv.mean(0) - cv.mean() * S
    a_off = a_off - a_off.mean() - b_part
    a_off = _shrink(_idct(_shrink(_dct(a_off), t)), t)
    return a_off + b_part, b_offset


def estimate(
    images: np.ndarray,
    darkfield: bool = False,
    smoothness: float | None = None,
    smoothness_darkfield: float | None = None,
    max_iter: int = 500,
    tol: float = 1e-6,
    reweight_iter: int = 10,
    reweight_tol: float = 1e-2,
    epsilon: float = 0.1,
) -> Estimate:
    """Flat-field (and dark-field) of a stack `images` (n, h, w) of one channel.

    `smoothness` (BaSiC's lambda) weighs the flat-field's DCT sparsity; default, as BaSiC, from
    the DCT of the mean image: sum |DCT(mean / mean(mean))| / 400 * 0.5 (dark-field: * 0.2).
    """
    D = np.asarray(images, np.float64)
    if D.ndim != 3 or D.shape[0] < 1:
        raise ValueError(f"images must be (n, h, w), got shape {D.shape}")
    scale = float(D.mean())
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("images must have a positive mean intensity")
    D = D / scale
    mean_img = D.mean(0)
    dct_sum = float(np.abs(_dct(mean_img / mean_img.mean())).sum())
    lam = smoothness if smoothness is not None else dct_sum / 400 * 0.5
    lam_dark = smoothness_darkfield if smoothness_darkfield is not None else dct_sum / 400 * 0.2
    weight = np.ones_like(D)
    flat_last, dark_last = np.ones(D.shape[1:]), np.zeros(D.shape[1:])
    converged, it = False, 0
    for it in range(1, reweight_iter + 1):  # noqa: B007 (the count is reported)
        A, E, dark, coeff, _ = _decompose(D, weight, lam, lam_dark, darkfield, tol, max_iter)
        weight = 1.0 / (np.abs(E / np.maximum(A.mean(0), 1e-12)) + epsilon)
        weight *= weight.size / weight.sum()
        flat = A.mean(0) - dark
        flat = flat / flat.mean()
        d_flat = np.abs(flat - flat_last).sum() / np.abs(flat_last).sum()
        diff = np.abs(dark - dark_last).sum()
        d_dark = 0.0 if diff < 1e-7 else diff / max(np.abs(dark_last).sum(), 1e-6)
        flat_last, dark_last = flat, dark
        if max(d_flat, d_dark) <= reweight_tol:
            converged = True
            break
    dark = dark_last * scale if darkfield else np.zeros_like(flat_last)
    return Estimate(flat_last, dark, coeff, it, converged)
