"""The measurements: shape and neighbours of one object from its box; intensity, texture and
segmentation uncertainty of a block's objects together, by `np.bincount` over the block rather
than a loop over objects (column conventions: the `features` package docstring)."""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

INTENSITY_STATS = ("mean", "median", "std", "min", "max", "integrated")
TEXTURE_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


OFFSETS = ((0, 1), (1, 1), (1, 0), (1, -1))  # graycomatrix's pairs at distance 1 at ANGLES
CHUNK = 256  # objects per block of counts turned into floats (levels^2 x 4 each)


def texture(values: np.ndarray, mask: np.ndarray, levels: int = 32) -> dict[str, float]:
    """Haralick statistics of the pixels under `mask` (2D, or 3D summed over z-planes): one
    object of `textures`."""
    obj = np.where(mask, 0, -1)
    return {p.lower(): float(v[0]) for p, v in textures(values, obj, 1, levels).items()}


def object_pixels(obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask of a block's object pixels (`obj >= 0`) and the object of each, in order."""
    m = obj >= 0
    return m, obj[m]


def cooccurrence_pairs(obj: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per direction of `OFFSETS`: the flat indices (source, target) of the pixel pairs at
    distance 1 whose two pixels belong to one object of `obj` (in-plane in 3D), and that
    object. They do not depend on the values: `block_stats` finds them once for all channels
    (issue 15)."""
    h, w = obj.shape[-2:]
    flat = obj.reshape(-1)
    p = np.flatnonzero(flat >= 0)
    y, x = np.divmod(p, w)
    if obj.ndim > 2:
        y %= h
    # sources whose neighbour at (dy, dx) lies in the plane: below, right, left of the edges
    inside = {"y": y < h - 1, "+x": x < w - 1, "-x": x > 0}
    inside["y+x"], inside["y-x"] = inside["y"] & inside["+x"], inside["y"] & inside["-x"]
    which = {(0, 1): "+x", (1, 1): "y+x", (1, 0): "y", (1, -1): "y-x"}
    out = []
    for dy, dx in OFFSETS:
        src = p[inside[which[dy, dx]]]
        dst = src + (dy * w + dx)
        o = flat[src]
        same = flat[dst] == o
        out.append((src[same], dst[same], o[same]))
    return out


def textures(
    values: np.ndarray, obj: np.ndarray, n: int, levels: int = 32, lo=None, hi=None, pairs=None
) -> dict:
    """Haralick statistics of objects 0..n-1 at once: `obj` gives each pixel's object (-1:
    none), `values` its value ((Y, X) or (Z, Y, X); 3D objects' pairs are summed over z-planes).
    lo, hi: each object's min and max of `values` (as float64) where the caller has them
    (`intensity_stats`), else found here; `pairs`: `cooccurrence_pairs(obj)`, likewise.

    Per object, values are quantised to `levels` grey levels over its own min..max; the pairs
    of graycomatrix (distance 1, `ANGLES`, symmetric) whose two pixels belong to the object are
    counted, all objects and directions in one `np.bincount`; the statistics are averaged over
    the directions that have pairs. All NaN for an object with no pixel pair. Returns
    `TEXTURE_PROPS` -> (n,) float64."""
    m = obj >= 0
    return _textures(values[m], obj[m], m, n, levels, lo, hi,
                     cooccurrence_pairs(obj) if pairs is None else pairs)  # fmt: skip


def _textures(raw, o, m, n: int, levels: int, lo, hi, pairs) -> dict:
    """`textures` of the objects' pixels (mask `m`): values `raw` of objects `o`."""
    v = raw.astype(np.float64)
    if lo is None or hi is None:
        lo = np.full(n, np.inf)
        hi = np.full(n, -np.inf)
        np.minimum.at(lo, o, v)
        np.maximum.at(hi, o, v)
    span = (hi - lo)[o]
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.floor((v - lo[o]) / span * levels)
    q = np.zeros(m.size, np.int64)
    q[m.reshape(-1)] = np.where(span > 0, np.minimum(np.nan_to_num(step), levels - 1), 0)
    # counts of each unordered pair of grey levels {i <= j} per object and direction: the
    # symmetric matrix is these counts on both sides of its diagonal (twice on it)
    cells = levels * levels
    counts = np.empty((n, len(pairs), cells), np.int64)
    for d, (src, dst, obj) in enumerate(pairs):
        qs, qd = q[src], q[dst]
        code = (obj * levels + np.minimum(qs, qd)) * levels + np.maximum(qs, qd)
        counts[:, d] = np.bincount(code, minlength=n * cells).reshape(n, cells)
    weights, squares = _weights(levels)
    out = {p: np.full(n, np.nan) for p in TEXTURE_PROPS}
    for c in range(0, n, CHUNK):
        k = counts[c : c + CHUNK].reshape(-1, cells).astype(np.float64)
        sums = k @ weights  # per (object, direction): the sums of `_weights`
        np.square(k, out=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            props, has = _haralick(sums, k @ squares)
            for p, val in props.items():
                val, ok = val.reshape(-1, len(pairs)), has.reshape(-1, len(pairs))
                mean = np.where(ok, val, 0.0).sum(axis=1) / ok.sum(axis=1)
                out[p][c : c + CHUNK] = np.where(ok.any(axis=1), mean, np.nan)
    return {p.lower(): v for p, v in out.items()}


def intensity_stats(values: np.ndarray, obj: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """`INTENSITY_STATS` of objects 0..n-1 at once (`obj` as for `textures`; every object has a
    pixel): one sort by (object, value) for median, min and max, sums by `np.bincount`."""
    m = obj >= 0
    return _intensity_stats(values[m], obj[m], n)


def _intensity_stats(raw: np.ndarray, o: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """`intensity_stats` of the objects' pixels: values `raw` of objects `o`."""
    v = raw.astype(np.float64)
    vs = _sorted_by_object(raw, v, o, n)
    count = np.bincount(o, minlength=n)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    total = np.bincount(o, v, minlength=n)
    mean = total / count
    var = np.bincount(o, (v - mean[o]) ** 2, minlength=n) / count
    median = (vs[first + (count - 1) // 2] + vs[first + count // 2]) / 2
    last = first + count - 1
    return dict(zip(INTENSITY_STATS, (mean, median, np.sqrt(var), vs[first], vs[last], total)))


def _sorted_by_object(raw: np.ndarray, v: np.ndarray, o: np.ndarray, n: int) -> np.ndarray:
    """`v` (= `raw` as float64) sorted by (object, value): integer values by one sort of a
    combined integer key, much faster than `np.lexsort` (issue 15); others by lexsort."""
    if raw.dtype.kind in "ui" and raw.dtype.itemsize <= 4 and raw.size:
        r = raw.astype(np.int64)
        low = int(r.min())
        span = int(r.max()) - low + 1
        if span * n < 2**62:
            key = o * span + (r - low)
            if span * n < 2**31:  # 32-bit keys sort in about half the time
                key = key.astype(np.int32)
            key = np.sort(key)
            return (key % span + low).astype(np.float64)
    return v[np.lexsort((v, o))]


# the columns of `_weights` after the pair count: the properties that are weighted sums of P,
# then the sums of i, i^2 and i * j that correlation is made of
WEIGHTED = ("contrast", "dissimilarity", "homogeneity")
MOMENTS = (4, 5, 6)


def _haralick(sums: np.ndarray, square_sum: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`TEXTURE_PROPS` of symmetric co-occurrence matrices P from the sums of `_weights` over
    each and the sum of its squared counts, and which matrices hold a pair: what
    `skimage.feature.graycoprops` gives for P (normalized to sum 1), to rounding. Correlation is
    cov / var of the matrix's two (equal, P being symmetric) marginals, 1 where the variance is
    below graycoprops' 1e-15."""
    total = sums[:, 0]
    has = total > 0
    t = np.where(has, total, 1.0)
    out = {name: sums[:, k] / t for k, name in enumerate(WEIGHTED, start=1)}
    mean, mean_sq, mean_prod = (sums[:, k] / t for k in MOMENTS)
    var = np.maximum(mean_sq - mean * mean, 0.0)
    flat = np.sqrt(var) < 1e-15
    out["correlation"] = np.where(flat, 1.0, (mean_prod - mean * mean) / np.where(flat, 1.0, var))
    out["ASM"] = square_sum / (t * t)
    out["energy"] = np.sqrt(out["ASM"])
    return out, has


@lru_cache
def _weights(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """For the counts of unordered grey-level pairs (i, j), i <= j, flattened (i * levels + j):
    the weights (levels^2, 7) whose products with them are the sums over the symmetric matrix
    P of 1, (i - j)^2, |i - j|, 1 / (1 + (i - j)^2), i, i^2 and i * j (a pair off the diagonal
    is in P twice, as (i, j) and (j, i); one on it, twice at (i, i)); and the weights
    (levels^2,) of their squares whose sum is that of P's squared entries. Read-only: shared."""
    i, j = (a.reshape(-1).astype(np.float64) for a in np.indices((levels, levels)))
    upper = i <= j
    d = i - j
    both = [np.ones_like(d), d * d, np.abs(d), 1 / (1 + d * d)]
    weights = np.stack([2 * w for w in both] + [i + j, i * i + j * j, 2 * i * j], axis=1)
    weights[~upper] = 0
    squares = np.where(i < j, 2.0, np.where(upper, 4.0, 0.0))
    for a in (weights, squares):
        a.flags.writeable = False
    return weights, squares


def _shape(mask: np.ndarray, spacing) -> dict[str, float]:
    """Pixel-unit shape of one object's mask (and physical axis lengths for given spacing)."""
    from skimage.measure import regionprops  # 3D and non-square pixels only: a 2D job of
    # square pixels (`shape.block_shapes`) does not pay its import (issue 15)

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


def measure_object(oid, lab, sl, spacing, distance) -> dict:
    """Shape and neighbours of one object (box `sl` in lab); `block_stats` measures the
    intensities, texture and uncertainty of a block's objects together."""
    shape = _shape(lab[sl] == oid, spacing)
    row = {"id": oid, "n": shape.pop("n"), "c": shape.pop("centroid"), **shape}
    row["neighbors"] = _neighbors(lab, sl, oid, distance)
    return row


def block_stats(
    lab, ids, img, unc, levels, channel_names, obj=None, pixels=None
) -> dict[str, np.ndarray]:
    """Intensity statistics and texture per channel of `img` ((C, ...) or None), and the mean
    and max of `unc` (or None), of the objects `ids` of the label block `lab` (each wholly
    inside it), in the order of `ids`; `obj`: each pixel's position in `ids` where the caller
    has it (`shape.object_index`)."""
    ids = np.asarray(ids, np.int64)
    if obj is None:
        lut = np.full(int(lab.max()) + 1, -1, np.int64)
        lut[ids] = np.arange(len(ids))
        obj = lut[lab]
    n = len(ids)
    cols = {}
    # the objects' pixels (mask, object of each; `pixels` where the caller has them) and
    # their pairs are the same for every channel
    m, o = pixels if pixels is not None else object_pixels(obj)
    pairs = None if img is None else cooccurrence_pairs(obj)
    for ch, values in zip(channel_names, img if img is not None else []):
        raw = values[m]
        stats = _intensity_stats(raw, o, n)
        for name, v in stats.items():
            cols[f"intensity_{name}_{ch}"] = v
        lo, hi = stats["min"], stats["max"]  # the same values textures would find again
        for name, v in _textures(raw, o, m, n, levels, lo, hi, pairs).items():
            cols[f"texture_{name}_{ch}"] = v
    if unc is not None:  # mean and max only: no sort by value (issue 15)
        u = unc[m].astype(np.float64)
        cols["uncertainty_mean"] = np.bincount(o, u, n) / np.bincount(o, minlength=n)
        top = np.full(n, -np.inf)
        np.maximum.at(top, o, u)
        cols["uncertainty_max"] = top
    return cols
