"""Object crops: fixed-size windows around object centroids, normalised with the sample's
statistics, and what the two diffusion classifiers (`lowest_error`, `represent`) share about
them: dihedral views, the held-out split, hashing and the training call."""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch


def object_crops(image, centroids: np.ndarray, size: int = 32, normalizer=None) -> np.ndarray:
    """(N, C, size, size) float32 crops of a (C, [Z,] Y, X) image around (N, ndim) centroids.

    Pixels outside the image repeat the nearest edge pixel. With a `normalizer` the crop is
    normalised per channel and mapped by v -> 2 v - 1 (so the normalisation range is [-1, 1]).
    """
    ndim = len(image.shape) - 1
    centroids = np.asarray(centroids, np.float64).reshape(-1, ndim)
    spatial = tuple(image.shape[1:])
    out = np.zeros((len(centroids), image.shape[0], size, size), np.float32)
    half = size // 2
    for i, c in enumerate(centroids):
        centre = np.floor(c + 0.5).astype(np.int64)
        index, pads = [slice(None)], [(0, 0)]
        if ndim == 3:
            index.append(int(np.clip(centre[0], 0, spatial[0] - 1)))
        for a, n in zip(centre[-2:], spatial[-2:]):
            lo, hi = a - half, a - half + size
            index.append(slice(max(lo, 0), min(max(hi, 0), n)))
            pads.append((max(-lo, 0), max(hi - n, 0)))
        block = np.asarray(image[tuple(index)], np.float32)
        if any(b == 0 for b in block.shape[1:]):
            continue  # centroid far outside: leave zeros
        out[i] = np.pad(block, pads, mode="edge")
    if normalizer is not None:
        out = 2.0 * normalizer.forward(out, channel_axis=1) - 1.0
    return out


def ring_profile(crops: np.ndarray, width: float = 2.0) -> np.ndarray:
    """(N, C * rings) mean of each channel of (N, C, S, S) crops in concentric rings `width` px
    wide around the crop centre (ring k: k * width <= r < (k + 1) * width, out to S / 2),
    ordered ring by ring. A cell's radial profile: its central pallor (or its absence), rim and
    surroundings, which the shape and whole-object intensity features do not see."""
    crops = np.asarray(crops, np.float32)
    n, c, size = crops.shape[0], crops.shape[1], crops.shape[-1]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    ring = (np.hypot(yy, xx) // width).astype(np.int64).ravel()
    keep = ring < int(np.ceil(size / 2 / width))
    onehot = np.eye(int(ring[keep].max()) + 1, dtype=np.float32)[ring[keep]]
    sums = crops.reshape(n, c, -1)[:, :, keep] @ onehot
    means = sums / onehot.sum(axis=0)
    return means.transpose(0, 2, 1).reshape(n, -1)


SCALED_EDGES = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.25, 1.5)
SIZE_COLUMNS = ("area_px", "perimeter_px", "axis_major_px", "axis_minor_px", "diameter_px")


def scaled_profile(
    crops: np.ndarray, radius: np.ndarray, edges: tuple[float, ...] = SCALED_EDGES
) -> np.ndarray:
    """(N, C * bins) mean of each channel of (N, C, S, S) crops in rings at fractions of each
    object's own `radius` (crop px): ring k is edges[k] <= r / radius < edges[k + 1], ordered
    ring by ring; a ring with no pixel in the crop is 0. Unlike `ring_profile` the rings scale
    with the cell, so a pallor's share of the cell reads the same in a large and a small cell."""
    crops = np.asarray(crops, np.float32)
    n, c, size = crops.shape[0], crops.shape[1], crops.shape[-1]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    r = np.hypot(yy, xx).ravel()
    bins = len(edges) - 1
    rel = r[None, :] / np.maximum(np.asarray(radius, np.float64).reshape(-1, 1), 1e-6)
    ring = np.digitize(rel, edges) - 1  # (N, P), -1 or bins when outside
    out = np.zeros((n, bins, c), np.float32)
    flat = crops.reshape(n, c, -1)
    for k in range(bins):
        m = (ring == k).astype(np.float32)
        cnt = m.sum(axis=1)
        out[:, k] = np.einsum("ncp,np->nc", flat, m) / np.maximum(cnt, 1)[:, None]
    return out.reshape(n, -1)


def boundary_shape(
    crops: np.ndarray,
    radius: np.ndarray,
    angles: int = 64,
    harmonics: int = 8,
    reach: float = 1.6,
    dark: bool | None = None,
) -> np.ndarray:
    """(N, 5 + harmonics) outline descriptors of the object at the centre of each crop, from
    r(theta): along each of `angles` rays from the crop centre, the outermost point darker than
    the crop's midpoint (between its 10th and 90th percentile of the channel mean) within
    `reach` x `radius` (crop px), over `radius`. Columns: mean, std, min, max of r, the mean
    jump between neighbouring rays (spicules: burr cells), and the magnitudes of the first
    `harmonics` Fourier harmonics of r / mean r (a tail: teardrops; elongation: ovalocytes).
    Bright objects on a dark background (fluorescence) are read negated: `dark` says which
    (None: decided once for all crops, by whether the median crop is darker inside `radius`
    than outside 1.3 x `radius`)."""
    crops = np.asarray(crops, np.float32)
    n, size = crops.shape[0], crops.shape[-1]
    g = crops.mean(axis=1)
    radius = np.maximum(np.asarray(radius, np.float64).reshape(-1), 1e-6)
    if dark is None and n:
        rr = np.hypot(*(np.mgrid[:size, :size] - (size - 1) / 2.0)).ravel()[None] / radius[:, None]
        flat = g.reshape(n, -1)
        inner = np.where(rr < 1, flat, np.nan)
        outer = np.where(rr > 1.3, flat, np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a crop with no pixel outside
            gap = np.nanmean(inner, axis=1) - np.nanmean(outer, axis=1)
        dark = bool(np.nanmedian(gap) <= 0) if np.isfinite(gap).any() else True
    g = g if dark or dark is None else -g
    lo, hi = np.percentile(g.reshape(n, -1), [10, 90], axis=1)
    thr = (lo + hi) / 2
    theta = np.linspace(0, 2 * np.pi, angles, endpoint=False)
    rs = np.arange(0, size / 2, 0.5)
    mid = (size - 1) / 2
    yy = np.clip(np.rint(mid + rs[None, :] * np.sin(theta)[:, None]).astype(int), 0, size - 1)
    xx = np.clip(np.rint(mid + rs[None, :] * np.cos(theta)[:, None]).astype(int), 0, size - 1)
    inside = (g[:, yy, xx] < thr[:, None, None]) & (rs <= reach * radius[:, None, None])
    last = inside.shape[-1] - 1 - np.argmax(inside[..., ::-1], axis=-1)
    r = rs[np.where(inside.any(axis=-1), last, 0)] / radius[:, None]  # (N, angles)
    mean = r.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(r / np.maximum(mean, 1e-6), axis=1))[:, 1 : harmonics + 1] / angles
    jump = np.abs(r - np.roll(r, 1, axis=1)).mean(axis=1, keepdims=True)
    stats = [mean, r.std(axis=1, keepdims=True), r.min(axis=1, keepdims=True)]
    return np.concatenate([*stats, r.max(axis=1, keepdims=True), jump, spec], axis=1)


RIM_FRACTIONS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
RIM_BANDS = (2, 5, 9, 14, 20, 28)


def rim_spectrum(
    crops: np.ndarray,
    radius: np.ndarray,
    fractions: tuple[float, ...] = RIM_FRACTIONS,
    bands: tuple[int, ...] = RIM_BANDS,
    angles: int = 128,
) -> np.ndarray:
    """(N, (len(bands) - 1) * len(fractions)) how much the channel mean of (N, C, S, S) crops
    swings around circles at `fractions` of each object's `radius` (crop px) from the crop
    centre: log(1e-3 + the root energy of the circle's angular Fourier harmonics k, bands[i] <= k
    < bands[i + 1] cycles per turn), band by band. A burr cell's 10-30 spicules are a periodic
    swing along its rim that an outline traced at crop resolution (`boundary_shape`) does not
    resolve. Invariant to rotation about the centre (up to the sampling of `angles` points)."""
    crops = np.asarray(crops, np.float32)
    n, size = crops.shape[0], crops.shape[-1]
    g = crops.mean(axis=1)
    mid = (size - 1) / 2.0
    theta = np.linspace(0, 2 * np.pi, angles, endpoint=False)
    radius = np.asarray(radius, np.float64).reshape(-1, 1)
    rows = np.arange(n)[:, None]
    out = np.zeros((n, len(bands) - 1, len(fractions)))
    for j, f in enumerate(fractions):
        yy = np.clip(mid + f * radius * np.sin(theta), 0, size - 1.001)
        xx = np.clip(mid + f * radius * np.cos(theta), 0, size - 1.001)
        y0, x0 = yy.astype(np.int64), xx.astype(np.int64)
        fy, fx = yy - y0, xx - x0
        ring = (g[rows, y0, x0] * (1 - fy) + g[rows, y0 + 1, x0] * fy) * (1 - fx)
        ring += (g[rows, y0, x0 + 1] * (1 - fy) + g[rows, y0 + 1, x0 + 1] * fy) * fx
        power = (np.abs(np.fft.rfft(ring, axis=1)) / angles) ** 2
        for i, (lo, hi) in enumerate(zip(bands[:-1], bands[1:])):
            out[:, i, j] = np.sqrt(power[:, lo:hi].sum(axis=1))
    return np.log(out.reshape(n, -1) + 1e-3)


def relative_descriptors(table: pd.DataFrame) -> np.ndarray:
    """(N, k) descriptors that red-blood-cell classes are defined by, relative to the sample:
    each size column (`SIZE_COLUMNS` present) over the sample's median object (objects under
    0.3 x the median left out of that median: fragments), each `intensity_mean_*` over the
    sample's median, roundness 4 pi area / perimeter^2 and the minor / major axis ratio.
    Macrocytes and microcytes are large or small for their smear, not in pixels."""
    groups = table.groupby("sample", sort=False)
    cols = []

    def typical(s: pd.Series) -> float:
        return float(s[s > 0.3 * s.median()].median())

    for c in [c for c in SIZE_COLUMNS if c in table.columns]:
        cols.append(table[c] / groups[c].transform(typical))
    for c in [c for c in table.columns if c.startswith("intensity_mean_")]:
        cols.append(table[c] / groups[c].transform("median"))
    if {"area_px", "perimeter_px"} <= set(table.columns):
        cols.append(4 * np.pi * table["area_px"] / table["perimeter_px"] ** 2)
    if {"axis_minor_px", "axis_major_px"} <= set(table.columns):
        cols.append(table["axis_minor_px"] / table["axis_major_px"])
    if not cols:
        return np.zeros((len(table), 0))
    out = np.stack([np.asarray(v, np.float64) for v in cols], axis=1)
    return np.where(np.isfinite(out), out, np.nan)


def descriptors(table: pd.DataFrame, crops: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """What the light classifier joins to the features from the crops and the table: the ring
    profile of `crops`, `relative_descriptors`, and (with an `area_px` column) the profile scaled
    to each object's radius sqrt(area / pi) x `scale` (crop px per image px), the outline's
    `boundary_shape` and the `rim_spectrum`."""
    parts = [ring_profile(crops), relative_descriptors(table)]
    if "area_px" in table.columns:
        radius = np.sqrt(table["area_px"].to_numpy(np.float64) / np.pi) * scale
        parts += [scaled_profile(crops, radius), boundary_shape(crops, radius)]
        parts.append(rim_spectrum(crops, radius))
    return np.concatenate(parts, axis=1)


def experiment_crops(objects: pd.DataFrame, images, norms, size: int, pool: int = 1) -> np.ndarray:
    """Crops of every row of `objects` (`sample`, `centroid_[z,]y,x`), in row order: the
    `size * pool` px around each centroid, averaged over `pool` x `pool` px blocks to `size`.

    `images` maps sample -> NGFF image store (raw), `norms` sample -> its norm.json.
    """
    from ..normalize import Normalizer, level0

    cols = [c for c in ("centroid_z", "centroid_y", "centroid_x") if c in objects.columns]
    edge = size * pool
    out = None
    for sample, rows in objects.groupby("sample", sort=False):
        norm = Normalizer.from_json(norms[sample])
        crops = object_crops(level0(images[sample], norm), rows[cols].to_numpy(), edge, norm)
        if pool > 1:
            n, c = crops.shape[:2]
            crops = crops.reshape(n, c, size, pool, size, pool).mean(axis=(3, 5))
        if out is None:
            out = np.zeros((len(objects), *crops.shape[1:]), np.float32)
        out[objects.index.get_indexer(rows.index)] = crops
    return np.zeros((0, 1, size, size), np.float32) if out is None else out


def crop_pool(objects: pd.DataFrame, size: int, pool="auto") -> int:
    """`classify.diffusion.pool`: a number, or for "auto" the pooling that makes the crop
    window about 1.5 median object diameters (`diameter_px`), so a crop holds its whole object
    and a rim of what is around it, whatever the objects' size in pixels; 1 without diameters."""
    if pool != "auto":
        return max(1, int(pool))
    if "diameter_px" not in objects.columns:
        return 1
    d = objects["diameter_px"].to_numpy(np.float64)
    d = d[np.isfinite(d)]
    return max(1, int(round(1.5 * float(np.median(d)) / size))) if len(d) else 1


def labelled(table: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The rows of `table` that have a label, with `class` (as text), index reset."""
    lab = labels[["sample", "id", "class"]].astype({"class": str})
    return table.drop(columns=["class"], errors="ignore").merge(lab, on=["sample", "id"])


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """View k (0-7) of a crop under the dihedral group: k % 4 quarter turns, a flip when k >= 4
    (the torch form of `diffusion.augment` for crops held as tensors)."""
    x = x.flip(-1) if k >= 4 else x
    return x.rot90(k % 4, dims=(-2, -1))


def hash_arrays(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def holdout_split(groups: np.ndarray, y: np.ndarray, fraction: float = 0.25, seed: int = 0):
    """(train, test) boolean masks for the diffusion classifier's held-out metrics.

    With two or more groups (samples, images) whole groups are held out (about `fraction` of
    them, at least one, chosen by the seeded generator); with one group a stratified
    `fraction` of the objects.
    """
    groups, y = np.asarray(groups), np.asarray(y)
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    test = np.zeros(len(y), bool)
    if len(names) >= 2:
        n = max(1, int(round(fraction * len(names))))
        test = np.isin(groups, rng.choice(names, min(n, len(names) - 1), replace=False))
    else:
        for k in np.unique(y):
            idx = np.flatnonzero(y == k)
            n = int(math.floor(fraction * len(idx)))
            test[rng.choice(idx, n, replace=False)] = True
    return ~test, test


def heldout_config(lab: pd.DataFrame, test: np.ndarray) -> dict:
    """The checkpoint config's record of the objects held out for the classify stage's
    metrics (and how they were chosen)."""
    return {
        "heldout": lab.loc[test, ["sample", "id"]].values.tolist(),
        "holdout": "sample" if lab["sample"].nunique() >= 2 else "stratified-objects",
    }


def train_on_crops(denoiser, source, crops, config: dict, steps: int, batch: int, lr: float, **kw):
    """Both diffusion classifiers' training: the engine's one loop on a crop source, without
    periodic checkpoints (the runs are short) and a warm-up of a tenth of the steps (at most
    100); the config gains the crops' size, channels and count. `kw`: seed, checkpoint_path,
    threads, device, progress."""
    from ..diffusion import train

    shape = {"crop_size": int(crops.shape[-1]), "channels": int(crops.shape[1])}
    return train(
        denoiser,
        source,
        steps=steps,
        batch=batch,
        lr=lr,
        checkpoint_every=0,
        log_every=max(steps // 20, 1),
        warmup=min(100, steps // 10),
        config={**shape, "n_train": len(crops), **config},
        **{"progress": False, **kw},
    )
