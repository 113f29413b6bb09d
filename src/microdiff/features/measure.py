"""The measurements of one object from its box: shape, neighbours, intensity, texture and
segmentation uncertainty (column conventions: the `features` package docstring)."""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import graycomatrix
from skimage.measure import regionprops

INTENSITY_STATS = ("mean", "median", "std", "min", "max", "integrated")
TEXTURE_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def texture(values: np.ndarray, mask: np.ndarray, levels: int = 32) -> dict[str, float]:
    """Haralick statistics of the pixels under `mask` (2D, or 3D summed over z-planes).

    Values are quantised to `levels` grey levels over their own min..max; pairs that involve a
    pixel outside the mask are dropped; the statistics are averaged over the directions that
    have pixel pairs. All NaN when the object has no pixel pair.
    """
    vals = values[mask].astype(np.float64)
    q = np.zeros(mask.shape, np.uint8 if levels < 255 else np.uint16)
    lo, hi = (vals.min(), vals.max()) if vals.size else (0.0, 0.0)
    if hi > lo:
        step = np.floor((vals - lo) / (hi - lo) * levels).astype(np.int64)
        q[mask] = 1 + np.minimum(step, levels - 1)
    else:
        q[mask] = 1
    planes = q if q.ndim == 3 else q[None]
    glcm = sum(
        graycomatrix(p, [1], ANGLES, levels=levels + 1, symmetric=True).astype(np.float64)
        for p in planes
    )[1:, 1:]
    counts = glcm.sum(axis=(0, 1))[0]
    if not (counts > 0).any():
        return {p.lower(): math.nan for p in TEXTURE_PROPS}
    with np.errstate(invalid="ignore", divide="ignore"):
        return {p.lower(): float(v.mean()) for p, v in haralick(glcm[..., counts > 0]).items()}


def haralick(glcm: np.ndarray) -> dict[str, np.ndarray]:
    """`TEXTURE_PROPS` of (levels, levels, distances, angles) co-occurrence counts, per distance
    and angle: the same operations as `skimage.feature.graycoprops`, which normalizes the
    matrices anew for each property it is asked for; here once for all six."""
    n = glcm.shape[0]
    p = glcm.astype(np.float64)
    sums = np.sum(p, axis=(0, 1), keepdims=True)
    sums[sums == 0] = 1
    p /= sums
    weights, i, j = _weights(n)
    out = {name: np.sum(p * w, axis=(0, 1)) for name, w in weights.items()}
    asm = np.sum(p**2, axis=(0, 1))
    out["energy"] = np.sqrt(asm)
    diff_i, diff_j = i - np.sum(i * p, axis=(0, 1)), j - np.sum(j * p, axis=(0, 1))
    std_i = np.sqrt(np.sum(p * diff_i**2, axis=(0, 1)))
    std_j = np.sqrt(np.sum(p * diff_j**2, axis=(0, 1)))
    cov = np.sum(p * (diff_i * diff_j), axis=(0, 1))
    flat = (std_i < 1e-15) | (std_j < 1e-15)
    corr = np.ones(cov.shape, np.float64)
    corr[~flat] = cov[~flat] / (std_i[~flat] * std_j[~flat])
    out["correlation"] = corr
    out["ASM"] = asm
    return out


@lru_cache
def _weights(n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """graycoprops' weights of contrast, dissimilarity and homogeneity for `n` grey levels, as
    (n, n, 1, 1) arrays, and its row and column index grids (read-only: they are shared)."""
    i, j = np.ogrid[0:n, 0:n]
    weights = {
        "contrast": (i - j) ** 2,
        "dissimilarity": np.abs(i - j),
        "homogeneity": 1.0 / (1.0 + (i - j) ** 2),
    }
    weights = {name: w.reshape((n, n, 1, 1)) for name, w in weights.items()}
    rows, cols = np.arange(n).reshape((n, 1, 1, 1)), np.arange(n).reshape((1, n, 1, 1))
    for a in [*weights.values(), rows, cols]:
        a.flags.writeable = False
    return weights, rows, cols


def _shape(mask: np.ndarray, spacing) -> dict[str, float]:
    """Pixel-unit shape of one object's mask (and physical axis lengths for given spacing)."""
    ndim = mask.ndim
    m = mask.astype(np.uint8)
    rp = regionprops(m)[0]
    n = int(rp.num_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            solidity = float(rp.solidity)
    out = {
        "n": n,
        "centroid": np.asarray(rp.centroid, np.float64),
        "perimeter_px": float(rp.perimeter) if ndim == 2 else math.nan,
        "eccentricity": float(rp.eccentricity) if ndim == 2 else math.nan,
        "solidity": solidity if 0 < solidity <= 1 else math.nan,
        "axis_major_px": float(rp.axis_major_length),
        "axis_minor_px": float(rp.axis_minor_length),
        "diameter_px": _diameter(n, ndim),
    }
    if spacing is not None:
        iso = len(set(spacing)) == 1
        if iso:
            major = out["axis_major_px"] * spacing[0]
            minor = out["axis_minor_px"] * spacing[0]
        else:
            rs = regionprops(m, spacing=spacing)[0]
            major, minor = float(rs.axis_major_length), float(rs.axis_minor_length)
        plane_iso = ndim == 2 and spacing[-1] == spacing[-2]
        out["axis_major_um"], out["axis_minor_um"] = major, minor
        out["perimeter_um"] = out["perimeter_px"] * spacing[-1] if plane_iso else math.nan
        out["diameter_um"] = _diameter(n * float(np.prod(spacing)), ndim)
    return out


def _diameter(size: float, ndim: int) -> float:
    """Diameter of the disc (2D) or ball (3D) with the given area or volume."""
    return math.sqrt(4 * size / math.pi) if ndim == 2 else (6 * size / math.pi) ** (1 / 3)


def _neighbors(lab: np.ndarray, sl: tuple[slice, ...], oid: int, distance: float) -> int:
    """Other labels with a pixel within `distance` of the object (lab holds the margin)."""
    r = math.ceil(distance)
    grown = tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, n in zip(sl, lab.shape))
    sub = lab[grown]
    near = ndi.distance_transform_edt(sub != oid) <= distance
    found = np.unique(sub[near])
    return int(np.count_nonzero((found != 0) & (found != oid)))


def measure_object(oid, lab, sl, img, unc, spacing, distance, levels, channel_names) -> dict:
    """Shape, neighbours, intensity, texture and uncertainty of one object (box `sl` in lab)."""
    mask = lab[sl] == oid
    shape = _shape(mask, spacing)
    row = {"id": oid, "n": shape.pop("n"), "c": shape.pop("centroid"), **shape}
    row["neighbors"] = _neighbors(lab, sl, oid, distance)
    if img is not None:
        pix = img[(slice(None), *sl)]
        for ch, values in zip(channel_names, pix):
            v = values[mask].astype(np.float64)
            stats = (v.mean(), np.median(v), v.std(), v.min(), v.max(), v.sum())
            row.update({f"intensity_{s}_{ch}": float(x) for s, x in zip(INTENSITY_STATS, stats)})
            tex = texture(values, mask, levels)
            row.update({f"texture_{p}_{ch}": x for p, x in tex.items()})
    if unc is not None:
        u = unc[sl][mask].astype(np.float64)
        row["uncertainty_mean"], row["uncertainty_max"] = float(u.mean()), float(u.max())
    return row
