"""Streaming per-channel robust statistics and an invertible percentile transform.

Statistics come from one pass over the store, band by band, into per-channel histograms: exact
for 8- and 16-bit data (one bin per grey value), and for float data 65,536 bins between the
channel's min and max (a second pass; percentile error at most one bin width). Histograms of
several samples merge, so per-experiment statistics cost one pass per sample.

The transform maps the low percentile to 0 and the high one to 1, per channel, without clipping,
so it is exactly invertible and outputs can be written back in the input's units.

With flat-field profiles (`illumination`), statistics are of the corrected images, `norm.json`
names the profiles (path relative to itself), and `level0(store, norm)` is how a stage reads an
image: corrected on the fly, never written corrected (see `microdiff.illumination`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import illumination as illum
from . import provenance
from .atomic import atomic_output
from .io.ngff import iter_bands

log = logging.getLogger(__name__)

FLOAT_BINS = 1 << 16


@dataclass
class ChannelHistogram:
    """Counts over bins with left edges `lo + i * width` (width 1 for integer data)."""

    counts: np.ndarray
    lo: float
    width: float
    total: float
    sum: float
    sumsq: float

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        cdf = np.cumsum(self.counts)
        out = []
        for q in qs:
            rank = q / 100.0 * (cdf[-1] - 1)
            i = int(np.searchsorted(cdf, rank, side="right"))
            out.append(float(self.lo + min(i, len(self.counts) - 1) * self.width))
        return out

    def to_sparse(self) -> dict:
        nz = np.flatnonzero(self.counts)
        return {
            "lo": self.lo,
            "width": self.width,
            "bins": nz.tolist(),
            "counts": self.counts[nz].tolist(),
            "n_bins": len(self.counts),
            "total": self.total,
            "sum": self.sum,
            "sumsq": self.sumsq,
        }

    @classmethod
    def from_sparse(cls, d: dict) -> ChannelHistogram:
        counts = np.zeros(d["n_bins"], np.int64)
        counts[np.asarray(d["bins"], int)] = d["counts"]
        return cls(counts, d["lo"], d["width"], d["total"], d["sum"], d["sumsq"])


def level0(store, norm: Normalizer | None = None):
    """Level 0 of an NGFF image as the stages read it: flat-field corrected on the fly when
    `norm` was computed on corrected images (and the image is an ingested one)."""
    return illum.level0(store, getattr(norm, "illumination", None))


def channel_histograms(store, profiles: illum.Profiles | None = None) -> list[ChannelHistogram]:
    """One pass (two for float data) over an NGFF image's level 0; memory is one band."""
    arr = illum.level0(store, profiles)
    n_c = arr.shape[0]
    integer = np.dtype(arr.dtype).kind in "ui"
    if integer:
        n_bins = int(np.iinfo(arr.dtype).max) + 1
        lo, width = [0.0] * n_c, [1.0] * n_c
    else:
        mins, maxs = [np.inf] * n_c, [-np.inf] * n_c
        for c, sl in iter_bands(arr.shape, arr.chunks):
            b = np.asarray(arr[(c, *sl)])
            mins[c], maxs[c] = min(mins[c], float(b.min())), max(maxs[c], float(b.max()))
        n_bins = FLOAT_BINS
        lo = mins
        width = [max(hi - m, 1e-12) / (FLOAT_BINS - 1) for m, hi in zip(mins, maxs)]
    counts = [np.zeros(n_bins, np.int64) for _ in range(n_c)]
    s, ss = [0.0] * n_c, [0.0] * n_c
    for c, sl in iter_bands(arr.shape, arr.chunks):
        b = np.asarray(arr[(c, *sl)]).ravel()
        idx = b if integer else np.floor((b - lo[c]) / width[c]).astype(np.int64)
        counts[c] += np.bincount(idx, minlength=n_bins)[:n_bins]
        bf = b.astype(np.float64)
        s[c] += float(bf.sum())
        ss[c] += float((bf * bf).sum())
    total = float(np.prod(arr.shape[1:]))
    return [ChannelHistogram(counts[c], lo[c], width[c], total, s[c], ss[c]) for c in range(n_c)]


def merge(hists: Sequence[ChannelHistogram]) -> ChannelHistogram:
    """Merge one channel's histograms from several samples (re-binning float histograms)."""
    if all(h.width == hists[0].width and h.lo == hists[0].lo for h in hists):
        counts = np.sum([h.counts for h in hists], axis=0)
        lo, width = hists[0].lo, hists[0].width
    else:
        lo = min(h.lo for h in hists)
        hi = max(h.lo + h.width * len(h.counts) for h in hists)
        width = (hi - lo) / FLOAT_BINS
        counts = np.zeros(FLOAT_BINS, np.int64)
        for h in hists:
            centers = h.lo + (np.arange(len(h.counts)) + 0.5) * h.width
            idx = np.clip(((centers - lo) / width).astype(np.int64), 0, FLOAT_BINS - 1)
            np.add.at(counts, idx, h.counts)
    return ChannelHistogram(
        counts,
        lo,
        width,
        sum(h.total for h in hists),
        sum(h.sum for h in hists),
        sum(h.sumsq for h in hists),
    )


def summarize(hists: Sequence[ChannelHistogram], low: float, high: float) -> list[dict]:
    out = []
    for h in hists:
        p_lo, p_hi, med = h.percentiles([low, high, 50.0])
        mean = h.sum / h.total
        std = float(np.sqrt(max(h.sumsq / h.total - mean * mean, 0.0)))
        flat = p_hi <= p_lo
        if flat:  # a flat channel: keep the transform invertible
            p_hi = p_lo + 1.0
        out.append({"low": p_lo, "high": p_hi, "median": med, "mean": mean, "std": std})
        if flat:
            out[-1]["flat"] = True
    return out


def flat_warnings(channels: Sequence[dict], where) -> list[str]:
    """One warning per channel whose percentiles coincide (constant or nearly all one value).

    Such a channel runs on to 0 objects without an error; the warning goes to the job's log and
    into norm.json, where the report's QC finds it."""
    out = []
    for i, c in enumerate(channels):
        if c.get("flat"):
            msg = (
                f"{where}: channel {i} is flat (its low and high percentiles are both "
                f"{c['low']:g}; mean {c['mean']:g}): nothing will be found in it"
            )
            log.warning(msg)
            out.append(msg)
    return out


class Normalizer:
    """Per-channel affine map: (x - low) / (high - low), and its inverse."""

    def __init__(self, low: Sequence[float], high: Sequence[float], illumination=None):
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        self.illumination = illumination  # flat-field profiles the statistics were taken with

    @classmethod
    def from_json(cls, path) -> Normalizer:
        with open(path) as fh:
            stats = json.load(fh)
        chans = stats["channels"]
        where = illumination_path(stats, path)
        profiles = illum.Profiles.load(where) if where else None
        return cls([c["low"] for c in chans], [c["high"] for c in chans], profiles)

    def _shape(self, v: np.ndarray, ndim: int, channel_axis: int) -> np.ndarray:
        shape = [1] * ndim
        shape[channel_axis] = -1
        return v.reshape(shape)

    def forward(self, x: np.ndarray, channel_axis: int = 0) -> np.ndarray:
        lo = self._shape(self.low, x.ndim, channel_axis)
        hi = self._shape(self.high, x.ndim, channel_axis)
        return (x.astype(np.float32) - lo) / (hi - lo)

    def inverse(self, y: np.ndarray, channel_axis: int = 0, dtype=None) -> np.ndarray:
        lo = self._shape(self.low, y.ndim, channel_axis)
        hi = self._shape(self.high, y.ndim, channel_axis)
        x = y.astype(np.float32) * (hi - lo) + lo
        if dtype is not None and np.dtype(dtype).kind in "ui":
            info = np.iinfo(dtype)
            return np.clip(np.rint(x), info.min, info.max).astype(dtype)
        return x if dtype is None else x.astype(dtype)


def compute(
    stores: Sequence,
    percentiles: Sequence[float] = (1.0, 99.8),
    out_path=None,
    mode: str = "sample",
    illumination=None,
) -> dict:
    """Statistics over one or more NGFF stores (pooled); written to `out_path` atomically.

    `illumination`: flat-field profiles (illumination.ome.zarr) to correct the images with."""
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    profiles = illum.Profiles.load(illumination) if illumination else None
    per_store = [channel_histograms(s, profiles) for s in stores]
    n_c = {len(h) for h in per_store}
    if len(n_c) != 1:
        counts = {str(s): len(h) for s, h in zip(stores, per_store)}
        raise ValueError(f"channel counts differ between stores: {counts}")
    pooled = [merge([h[c] for h in per_store]) for c in range(n_c.pop())]
    result = {
        "mode": mode,
        "percentiles": [low, high],
        "channels": summarize(pooled, low, high),
        "histograms": [h.to_sparse() for h in pooled],
        "microdiff": provenance.record(
            "normalize",
            {"percentiles": [low, high], "mode": mode},
            inputs=[str(s) for s in stores],
        ),
    }
    if illumination:
        result["illumination"] = _relative(illumination, out_path)
    warnings = flat_warnings(result["channels"], ", ".join(str(s) for s in stores))
    if warnings:
        result["warnings"] = warnings
    if out_path is not None:
        write_json(out_path, result)
    return result


def merge_files(paths: Sequence, percentiles: Sequence[float], out_path=None) -> dict:
    """Pool per-sample `norm.json` files (their histograms) into experiment-wide statistics."""
    loaded = []
    for p in paths:
        with open(p) as fh:
            loaded.append([ChannelHistogram.from_sparse(h) for h in json.load(fh)["histograms"]])
    low, high = percentiles
    pooled = [merge([h[c] for h in loaded]) for c in range(len(loaded[0]))]
    result = {
        "mode": "experiment",
        "percentiles": [low, high],
        "channels": summarize(pooled, low, high),
        "histograms": [h.to_sparse() for h in pooled],
        "microdiff": provenance.record(
            "normalize",
            {"percentiles": [low, high], "mode": "experiment"},
            inputs=[str(p) for p in paths],
        ),
    }
    with open(paths[0]) as fh:
        where = illumination_path(json.load(fh), paths[0])
    if where:
        result["illumination"] = _relative(where, out_path)
    if out_path is not None:
        write_json(out_path, result)
    return result


def _relative(target, out_path) -> str:
    base = os.path.dirname(os.path.abspath(out_path)) if out_path is not None else os.getcwd()
    return os.path.relpath(os.path.abspath(target), base)


def illumination_path(stats: dict, norm_path) -> str | None:
    """The flat-field profiles a norm.json was computed with (its path is relative to it)."""
    rel = stats.get("illumination")
    return os.path.join(os.path.dirname(os.path.abspath(norm_path)), rel) if rel else None


def write_json(path, obj) -> None:
    with atomic_output(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)


def percentile_norm(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Per-channel percentile normalization of (C, ...) to about [0, 1] (training images)."""
    image = np.asarray(image, np.float32)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        lo, hi = np.percentile(image[c], [low, high])
        out[c] = (image[c] - lo) / max(hi - lo, 1e-6)
    return out
