"""The illumination stage: flat-field (and dark-field) profiles per channel, applied on the fly.

    estimate(raw stores, params, out)  -> illumination.ome.zarr (small: the working grid)
    Profiles.load(path)                -> profiles; Corrected(level 0, profiles) reads corrected

The estimate (BaSiC, `microdiff.flatfield`) runs on a bounded sample of the experiment's image
planes (`max_images`; each z plane of a 3D image counts as one), each shrunk to the working grid
(`working_size`, area averaging band by band), so its memory is `max_images x working_size^2`
per channel plus one band of one image, whatever the experiment's size. Each image is taken as
one camera field of view: the profiles are functions on the image's extent, resampled (bilinear)
to any image's grid.

The correction `(x - darkfield) / flatfield` is never written out: `Corrected` wraps an ingested
image's level 0 and corrects each region as it is read (float32, in the raw units: the
flat-field has mean 1). Stages read through `normalize.level0`, which applies it when the
image's `norm.json` was computed on corrected images; only ingested images (`raw.ome.zarr`) are
corrected, since images computed from corrected reads (restored, super-resolved) already are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import zarr

from . import provenance
from .atomic import atomic_output
from .io import ngff

log = logging.getLogger("microdiff.illumination")
DEFAULTS = {"working_size": 128, "max_images": 64, "darkfield": True, "smoothness": None,
            "seed": 0}  # fmt: skip
MIN_FLAT = 0.05  # the flat-field is clamped here (mean 1) so a dead corner never divides by ~0


def _bins(n: int, m: int) -> np.ndarray:
    """The output bin of each of `n` input positions on a grid of `m` (area averaging)."""
    return (np.arange(n, dtype=np.int64) * m) // n


def shrink_plane(array, lead: tuple[int, ...], out: tuple[int, int], rows: int = 256):
    """Area-average the (Y, X) plane `array[lead]` onto an `out` grid, `rows` rows at a time."""
    Y, X = array.shape[-2:]
    by, bx = _bins(Y, out[0]), _bins(X, out[1])
    x_starts = np.flatnonzero(np.r_[True, bx[1:] != bx[:-1]])
    acc = np.zeros(out, np.float64)
    for y0 in range(0, Y, rows):
        y1 = min(y0 + rows, Y)
        band = np.asarray(array[(*lead, slice(y0, y1), slice(None))], np.float64)
        cols = np.add.reduceat(band, x_starts, axis=1)  # (rows, w)
        np.add.at(acc, by[y0:y1], cols)
    counts = np.bincount(by, minlength=out[0])[:, None] * np.bincount(bx, minlength=out[1])
    return acc / counts


def working_grid(shapes: Sequence[tuple[int, ...]], size: int) -> tuple[int, int]:
    return min(size, min(s[-2] for s in shapes)), min(size, min(s[-1] for s in shapes))


def sample_stack(arrays: Sequence, size: int, max_images: int, seed: int = 0):
    """(C, n, h, w) float64: up to `max_images` planes drawn evenly over the experiment."""
    planes = [(k, z) for k, a in enumerate(arrays) for z in range(a.shape[1] if a.ndim == 4 else 1)]
    if len(planes) > max_images:
        rng = np.random.default_rng([seed, 19])
        planes = [planes[i] for i in np.sort(rng.choice(len(planes), max_images, replace=False))]
    grid = working_grid([a.shape for a in arrays], size)
    n_c = arrays[0].shape[0]
    stack = np.zeros((n_c, len(planes), *grid))
    for i, (k, z) in enumerate(planes):
        for c in range(n_c):
            lead = (c, z) if arrays[k].ndim == 4 else (c,)
            stack[c, i] = shrink_plane(arrays[k], lead, grid)
    return stack, planes


def _is_ingested(group: zarr.Group) -> bool:
    return (group.attrs.get("microdiff") or {}).get("stage") == "ingest"


def estimate(stores: Sequence, params: dict | None = None, out=None, channel_names=None) -> dict:
    """Profiles of every channel over `stores` (raw NGFF images); written to `out` atomically.

    Returns the provenance block (also in the output's attributes, key `microdiff`).
    """
    from . import flatfield  # scipy: here, so that applying profiles (normalize) does not load it

    p = {**DEFAULTS, **(params or {})}
    p.pop("enabled", None)
    groups = [zarr.open_group(str(s), mode="r") for s in stores]
    arrays = [ngff.level0(g) for g in groups]
    n_c = {a.shape[0] for a in arrays}
    if len(n_c) != 1:
        raise ValueError(f"channel counts differ between images: {sorted(n_c)}")
    shapes = {tuple(a.shape[-2:]) for a in arrays}
    if len(shapes) > 1:
        log.warning("images of different sizes %s share one profile, resampled to each",
                    sorted(shapes))  # fmt: skip
    stack, planes = sample_stack(arrays, int(p["working_size"]), int(p["max_images"]),
                                 int(p["seed"]))  # fmt: skip
    channels = ngff.channels(groups[0].attrs)
    names = channel_names or [c.get("label", f"ch{i}") for i, c in enumerate(channels)]
    names = list(names) + [f"ch{i}" for i in range(len(names), stack.shape[0])]
    flats, darks, fits = [], [], []
    for c in range(stack.shape[0]):
        est = flatfield.estimate(stack[c], darkfield=bool(p["darkfield"]),
                                 smoothness=p["smoothness"])  # fmt: skip
        flats.append(est.flatfield)
        darks.append(est.darkfield)
        fits.append({"channel": names[c], "reweightings": est.iterations,
                     "converged": est.converged, "flat_min": float(est.flatfield.min()),
                     "flat_max": float(est.flatfield.max()),
                     "dark_mean": float(est.darkfield.mean())})  # fmt: skip
        log.info("%s: flat-field %.3f..%.3f, dark-field mean %.1f (%d reweightings%s)",
                 names[c], fits[-1]["flat_min"], fits[-1]["flat_max"], fits[-1]["dark_mean"],
                 est.iterations, "" if est.converged else ", not converged")  # fmt: skip
    prov = provenance.record(
        "illumination",
        p,
        inputs=[str(s) for s in stores],
        method="BaSiC (low-rank + sparse, DCT-smooth flat-field; microdiff.flatfield)",
        images=len(planes),
        grid=list(stack.shape[-2:]),
        channels=names,
        fits=fits,
    )
    if out is not None:
        write(out, np.stack(flats), np.stack(darks), names, prov)
    return prov


def write(path, flat: np.ndarray, dark: np.ndarray, names: Sequence[str], prov: dict) -> None:
    """The profiles as one small NGFF image: channels `flatfield:<c>`..., `darkfield:<c>`..."""
    data = np.concatenate([flat, dark]).astype(np.float32)
    labels = [f"flatfield:{n}" for n in names] + [f"darkfield:{n}" for n in names]
    with atomic_output(path) as tmp:
        group = ngff.create_image(tmp, data.shape, np.float32, "cyx", channel_names=labels,
                                  attrs={"microdiff": prov}, name="illumination")  # fmt: skip
        group["0"][...] = data
        ngff.fill_pyramid(group)


class Profiles:
    """Flat-field and dark-field per channel on a small grid, evaluated on any image grid."""

    def __init__(self, flat: np.ndarray, dark: np.ndarray, path: str | None = None):
        self.flat = np.maximum(np.asarray(flat, np.float32), MIN_FLAT)
        self.dark = np.asarray(dark, np.float32)
        self.path = path

    @classmethod
    def load(cls, path) -> Profiles:
        data = np.asarray(zarr.open_group(str(path), mode="r")["0"][...], np.float32)
        n = data.shape[0] // 2
        return cls(data[:n], data[n:], str(path))

    @property
    def channels(self) -> int:
        return self.flat.shape[0]

    def at(self, channels, ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]):
        """(flat, dark), each (len(channels), len(ys), len(xs)), at pixel rows `ys` and columns
        `xs` of an image of (Y, X) `shape`: bilinear between the grid's cell centres."""

        def weights(idx, n, m):
            u = np.clip((np.asarray(idx, np.float64) + 0.5) * m / n - 0.5, 0, m - 1)
            i0 = np.minimum(np.floor(u).astype(np.int64), m - 1)
            return i0, np.minimum(i0 + 1, m - 1), (u - i0).astype(np.float32)

        h, w = self.flat.shape[-2:]
        y0, y1, fy = weights(ys, shape[0], h)
        x0, x1, fx = weights(xs, shape[1], w)

        def sample(p):
            p = p[list(channels)]
            rows = p[:, y0] * (1 - fy)[None, :, None] + p[:, y1] * fy[None, :, None]
            return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx

        return sample(self.flat), sample(self.dark)


class Corrected:
    """Lazy, flat-field corrected view of a (C, [Z,] Y, X) array: `(x - dark) / flat`, float32.

    Indexing takes integers and slices (any step) per axis, as a zarr array does.
    """

    def __init__(self, array, profiles: Profiles):
        if array.shape[0] != profiles.channels:
            raise ValueError(
                f"illumination profiles have {profiles.channels} channels, the image "
                f"{array.shape[0]}"
            )
        self.array, self.profiles = array, profiles
        self.shape, self.ndim = tuple(array.shape), len(array.shape)
        self.dtype = np.dtype(np.float32)
        self.chunks = getattr(array, "chunks", None)
        self.attrs = getattr(array, "attrs", {})

    def _expand(self, index) -> list:
        index = list(index) if isinstance(index, tuple) else [index]
        if any(i is Ellipsis for i in index):
            at = index.index(Ellipsis)
            index[at : at + 1] = [slice(None)] * (self.ndim - len(index) + 1)
        index += [slice(None)] * (self.ndim - len(index))
        for i in index:
            if not isinstance(i, slice | int | np.integer):
                raise TypeError(f"Corrected supports integer and slice indices, got {i!r}")
        return index

    def __getitem__(self, index):
        index = self._expand(index)
        keep = [slice(i, i + 1) if not isinstance(i, slice) else i for i in index]
        block = np.asarray(self.array[tuple(keep)], np.float32)
        picks = [range(*s.indices(n)) for s, n in zip(keep, self.shape)]
        flat, dark = self.profiles.at(picks[0], picks[-2], picks[-1], self.shape[-2:])
        if self.ndim == 4:
            flat, dark = flat[:, None], dark[:, None]
        block = (block - dark) / flat
        drop = tuple(a for a, i in enumerate(index) if not isinstance(i, slice))
        return block.squeeze(drop) if drop else block

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype)


def level0(store, profiles: Profiles | None = None):
    """Level 0 of an NGFF image (path or group): corrected on the fly when `profiles` are given
    and the image is an ingested one, else the stored array."""
    group = store if isinstance(store, zarr.Group) else zarr.open_group(str(store), mode="r")
    arr = ngff.level0(group)
    if profiles is None or not _is_ingested(group):
        return arr
    return Corrected(arr, profiles)
