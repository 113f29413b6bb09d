"""Random fields, point sources and the optics and camera of a simulated fluorescence sample:
fluorophore density -> PSF blur -> + background -> x illumination -> photon and read noise."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi


def smooth_field(rng, shape, coarse: int) -> np.ndarray:
    """A smooth random field with unit standard deviation and features about `coarse` px wide.

    Random weights on a grid with spacing `coarse`, spread by a separable Gaussian kernel: one
    small matrix product per axis, so it costs a few operations per pixel in 2D and 3D.
    """
    out = rng.standard_normal([math.ceil(n / coarse) + 4 for n in shape]).astype(np.float32)
    for ax, n in enumerate(shape):
        grid = (np.arange(out.shape[ax]) - 2) * coarse
        x = np.arange(n)
        w = np.exp(-(((x[:, None] - grid[None, :]) / coarse) ** 2)).astype(np.float32)
        out = np.moveaxis(np.tensordot(w, np.moveaxis(out, ax, 0), axes=1), 0, ax)
    return (out - out.mean()) / (out.std() + 1e-6)


def band_noise(rng, shape, sigma, wide, zs) -> np.ndarray:
    """Band-pass noise (between `sigma` and `wide` pixels) with unit standard deviation."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    lo = [sigma / zs] + [sigma] * 2 if len(shape) == 3 else sigma
    hi = [wide / zs] + [wide] * 2 if len(shape) == 3 else wide
    out = ndi.gaussian_filter(noise, lo) - ndi.gaussian_filter(noise, hi)
    return out / (out.std() + 1e-6)


def points(items, shape, sigma, zs) -> np.ndarray:
    """Render point sources (positions, amplitudes) as Gaussian spots with the given peak."""
    img = np.zeros(shape, np.float32)
    if not items:
        return img
    pos = np.concatenate([p for p, _ in items], axis=1)
    amp = np.concatenate([a for _, a in items]).astype(np.float32)
    inside = np.all((pos >= 0) & (pos < np.array(shape)[:, None]), axis=0)
    np.add.at(img, tuple(pos[:, inside]), amp[inside])
    sig = [sigma / zs, sigma, sigma] if len(shape) == 3 else [sigma] * 2
    out = ndi.gaussian_filter(img, sig, truncate=3.0)
    return out * float(np.prod([math.sqrt(2 * math.pi) * s for s in sig]))


def illumination(rng, yx, vignetting) -> np.ndarray:
    """Smooth uneven illumination: an off-centre radial fall-off times a gentle random field."""
    ny, nx = yx
    cy, cx = rng.normal((ny / 2, nx / 2), (0.1 * ny, 0.1 * nx))
    y = (np.arange(ny, dtype=np.float32)[:, None] - cy) / (ny / 2)
    x = (np.arange(nx, dtype=np.float32)[None, :] - cx) / (nx / 2)
    fall = 1 - vignetting * (y**2 + x**2) / 2
    wob = 1 + 0.05 * smooth_field(rng, yx, max(ny, nx) // 3)
    return np.clip(fall * wob, 0.05, None).astype(np.float32)


def signal(rng, density, psf_sigma, background, illum) -> np.ndarray:
    """One channel's expected photon fraction: the fluorophore density blurred by the PSF, plus
    a smooth additive background, times the illumination field."""
    blurred = ndi.gaussian_filter(density, psf_sigma, mode="nearest", truncate=3.0)
    ny, nx = density.shape[-2:]
    back = background * (1 + 0.3 * smooth_field(rng, density.shape[-2:], max(ny, nx) // 4))
    return np.maximum((blurred + back) * illum, 0).astype(np.float32)


def camera(rng, signals, photons, gain, read_noise, offset) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) (C, [Z,] Y, X) of the channels' signals: Poisson photon noise, camera gain,
    Gaussian read noise and offset, rounded and clipped to uint16 (`clean` is the mean)."""
    shape = signals[0].shape
    clean = np.empty((len(signals), *shape), np.float32)
    noisy = np.empty((len(signals), *shape), np.uint16)
    for c, s in enumerate(signals):
        lam = photons[c] * s
        clean[c] = offset + gain * lam
        counts = offset + gain * rng.poisson(lam) + rng.normal(0, read_noise, shape)
        noisy[c] = np.clip(np.rint(counts), 0, 65535)
    return clean, noisy
