"""Figures for the experiment report (matplotlib, Agg): one function per picture.

Each `*_figure` function returns a matplotlib Figure; `save` writes it (PNG) atomically. Images
are read at a reduced size (a pyramid level, then a stride), so a figure of a whole-slide image
costs about `max_px` squared pixels of memory, not the image. 3D images show their middle plane.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .atomic import atomic_output  # noqa: E402

FEATURES = ("area_px", "volume_px", "eccentricity", "solidity", "axis_major_px", "neighbors")


def save(fig, path, dpi: int = 100) -> None:
    """Write a figure as PNG atomically and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def _levels(group) -> list[str]:
    meta = group.attrs.get("ome", group.attrs)
    return [d["path"] for d in meta["multiscales"][0]["datasets"]]


def _plane(array, max_px: int, channel: int | None) -> np.ndarray:
    """A (Y, X) view of a ([C,] [Z,] Y, X) array: one channel, the middle plane, strided."""
    lead = [] if channel is None else [channel]
    while len(array.shape) - len(lead) > 2:
        n = array.shape[len(lead)]
        lead.append(n // 2)
    y, x = array.shape[-2:]
    step = max(1, math.ceil(max(y, x) / max_px))
    return np.asarray(array[(*lead, slice(None, None, step), slice(None, None, step))])


def read_small(path, max_px: int = 512, channel: int | None = 0, labels: str | None = None):
    """One channel (or a label image: `labels='nuclei'`) of an NGFF store, about `max_px`
    pixels on its longest side: the coarsest pyramid level that is at least that large,
    strided down to it."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    if labels is not None:
        group, channel = group["labels"][labels], None
    levels = _levels(group)
    pick = levels[0]
    for lv in levels:
        if max(group[lv].shape[-2:]) >= max_px:
            pick = lv
    data = _plane(group[pick], max_px, channel)
    if labels is None:
        return data.astype(np.float32)
    return data


def channel_index(path, suffix: str) -> int | None:
    """Index of the first channel whose omero label ends with `suffix` (None if none)."""
    import zarr

    attrs = zarr.open_group(str(path), mode="r").attrs
    omero = attrs.get("omero") or attrs.get("ome", {}).get("omero", {})
    for i, ch in enumerate(omero.get("channels", [])):
        if str(ch.get("label", "")).endswith(suffix):
            return i
    return None


def _stretch(img: np.ndarray, lo=None, hi=None) -> np.ndarray:
    lo = np.percentile(img, 1) if lo is None else lo
    hi = np.percentile(img, 99.8) if hi is None else hi
    return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)


def montage_figure(
    raw, segmentation=None, restored=None, norm: Mapping | None = None, max_px: int = 512
):
    """Raw, restored, segmentation outlines over raw, and uncertainty, side by side (channel
    0; display range from the sample's normalization statistics when given)."""
    from skimage.segmentation import find_boundaries

    lo = hi = None
    if norm is not None:
        lo, hi = norm["channels"][0]["low"], norm["channels"][0]["high"]
    base = _stretch(read_small(raw, max_px), lo, hi)
    panels = [("raw", base, "gray")]
    if restored is not None:
        panels.append(("restored", _stretch(read_small(restored, max_px), lo, hi), "gray"))
    if segmentation is not None:
        lab = read_small(segmentation, max_px, labels="nuclei")
        rgb = np.repeat(base[..., None], 3, axis=2)
        rgb[find_boundaries(lab, mode="inner")] = (1.0, 0.2, 0.2)
        if "cells" in _label_names(segmentation):
            cells = read_small(segmentation, max_px, labels="cells")
            rgb[find_boundaries(cells, mode="inner")] = (0.2, 1.0, 0.2)
        panels.append((f"segmentation ({len(np.unique(lab)) - 1} nuclei)", rgb, None))
        unc = channel_index(segmentation, "_std")
        if unc is not None:
            panels.append(
                ("uncertainty (nuclei std)", read_small(segmentation, max_px, unc), "magma")
            )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, img, cmap) in zip(axes[0], panels):
        im = ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        if cmap == "magma":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return fig


def _label_names(path) -> list[str]:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    return list(group["labels"].attrs.get("labels", [])) if "labels" in group else []


def noise_curve(image: np.ndarray, bins: int = 16) -> pd.DataFrame:
    """Noise variance against local mean of one (Y, X) image: `mean`, `variance`, `n`.

    The noise is measured on differences of horizontal neighbours, (x[i+1] - x[i]) / sqrt(2),
    per bin of the local 3x3 mean (quantile bins): the variance of the differences within 4
    robust standard deviations (1.4826 MAD) of their median, so edges hardly enter.
    Poisson-Gaussian noise gives a straight line (slope = gain).
    """
    from scipy.ndimage import uniform_filter

    img = np.asarray(image, np.float64)
    d = (img[:, 1:] - img[:, :-1]) / math.sqrt(2)
    mean = uniform_filter(img, 3)[:, :-1]
    edges = np.unique(np.quantile(mean, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        v = d[which == b]
        if v.size < 50:
            continue
        dev = np.abs(v - np.median(v))
        keep = dev <= 4 * 1.4826 * max(float(np.median(dev)), 0.5)  # drop edges, not noise
        var = float(np.mean((v[keep] - v[keep].mean()) ** 2))
        rows.append({"mean": float(mean[which == b].mean()), "variance": var, "n": v.size})
    return pd.DataFrame(rows, columns=["mean", "variance", "n"])


def normalization_figure(norms: Mapping, noise: Mapping | None = None):
    """Per channel: intensity histograms of every sample with its percentile range (from each
    sample's norm.json), and the noise variance-vs-mean curves (`noise`: sample -> list of one
    `noise_curve` frame per channel)."""
    first = next(iter(norms.values()))
    n_ch = len(first["channels"])
    rows = 2 if noise else 1
    fig, axes = plt.subplots(rows, n_ch, figsize=(4.2 * n_ch, 3.2 * rows), squeeze=False)
    for sample, norm in norms.items():
        for c, (hist, ch) in enumerate(zip(norm["histograms"], norm["channels"])):
            ax = axes[0, c]
            x = hist["lo"] + np.asarray(hist["bins"], np.float64) * hist["width"]
            counts = np.asarray(hist["counts"], np.float64)
            ax.plot(x, counts / max(counts.sum(), 1), lw=1, label=sample)
            ax.axvspan(ch["low"], ch["high"], alpha=0.05)
            ax.set_yscale("log")
            ax.set_title(f"channel {c}: histogram, percentile range", fontsize=9)
            ax.set_xlabel("intensity")
    axes[0, 0].legend(fontsize=7)
    if noise:
        for sample, curves in noise.items():
            for c, curve in enumerate(curves[:n_ch]):
                ax = axes[1, c]
                ax.plot(curve["mean"], curve["variance"], "o-", ms=3, lw=1, label=sample)
                if len(curve) >= 2:
                    slope, icpt = np.polyfit(curve["mean"], curve["variance"], 1)
                    ax.set_title(
                        f"channel {c}: noise variance vs mean (slope {slope:.2f})", fontsize=9
                    )
                ax.set_xlabel("local mean")
                ax.set_ylabel("noise variance")
        axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def pick_features(objects: pd.DataFrame, n: int = 6) -> list[str]:
    """Shape features of `FEATURES` present in the table, then the first channel's mean
    intensity and texture contrast, up to `n`."""
    cols = [c for c in FEATURES if c in objects.columns and objects[c].notna().any()]
    cols += [c for c in objects.columns if c.startswith("intensity_mean_")][:1]
    cols += [c for c in objects.columns if c.startswith("texture_contrast_")][:1]
    return cols[:n]


def feature_figure(objects: pd.DataFrame, classes: pd.DataFrame, n: int = 6):
    """Histograms of a few features, one colour per predicted class."""
    keys = [k for k in ("sample", "kind", "id") if k in objects.columns and k in classes.columns]
    df = objects.merge(classes[[*keys, "class"]], on=keys)
    cols = pick_features(df, n)
    ncol = 3
    nrow = max(1, math.ceil(len(cols) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        values = df[col].to_numpy(np.float64)
        finite = values[np.isfinite(values)]
        edges = np.histogram_bin_edges(finite if finite.size else [0, 1], bins=20)
        for name, rows in df.groupby("class", sort=True):
            ax.hist(rows[col].dropna(), bins=edges, histtype="step", lw=1.5, label=str(name))
        ax.set_title(col, fontsize=9)
    for ax in list(axes.flat)[len(cols) :]:
        ax.set_axis_off()
    axes[0, 0].legend(title="class", fontsize=7)
    fig.tight_layout()
    return fig


def class_counts_figure(counts: pd.DataFrame):
    """Stacked bars of class fractions per sample, with the object count on each bar."""
    table = counts.pivot_table(index="sample", columns="class", values="count", fill_value=0)
    frac = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(table) + 2), 3.5))
    bottom = np.zeros(len(table))
    for cls in frac.columns:
        ax.bar(frac.index.astype(str), frac[cls], bottom=bottom, label=str(cls))
        bottom += frac[cls].to_numpy()
    for i, total in enumerate(table.sum(axis=1)):
        ax.text(i, 1.01, f"n={int(total)}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction of objects")
    ax.legend(title="class", fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def metrics_figure(metrics: Mapping):
    """The confusion matrix with accuracy and macro-F1 (supervised, diffusion), or BIC
    against the number of clusters (unsupervised)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = np.asarray(metrics.get("confusion_matrix") or [], np.float64)
    if cm.size:
        classes = [str(c) for c in metrics["classes"]]
        rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, int(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(
            f"{metrics.get('mode')} ({metrics.get('cv')}): accuracy "
            f"{metrics['accuracy']:.3f}, macro-F1 {metrics['f1_macro']:.3f}",
            fontsize=9,
        )
    elif metrics.get("bic"):
        ks = sorted(metrics["bic"], key=int)
        ax.plot([int(k) for k in ks], [metrics["bic"][k] for k in ks], "o-")
        ax.set_xlabel("clusters")
        ax.set_ylabel("BIC")
        ax.set_title(f"unsupervised: {metrics.get('k')} clusters (lowest BIC)", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no metrics (no labelled objects held out)", ha="center")
        ax.set_axis_off()
    return fig


def runtime_table(paths: Sequence) -> pd.DataFrame:
    """Snakemake benchmark files `benchmarks/{rule}/{job}.tsv` -> per rule: `jobs`,
    `total_s`, `max_s`, `max_rss_mb`, sorted by total time."""
    rows = []
    for p in paths:
        p = Path(p)
        b = pd.read_csv(p, sep="\t")
        if b.empty:
            continue
        rss = pd.to_numeric(b.get("max_rss", pd.Series([np.nan])), errors="coerce")
        rows.append({"rule": p.parent.name, "s": float(b["s"].iloc[0]), "rss": rss.iloc[0]})
    df = pd.DataFrame(rows, columns=["rule", "s", "rss"])
    out = df.groupby("rule").agg(
        jobs=("s", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("rss", "max")
    )
    return out.sort_values("total_s", ascending=False).reset_index()


def runtime_figure(table: pd.DataFrame):
    """Horizontal bars of the wall time per rule (all its jobs), with the job count."""
    fig, ax = plt.subplots(figsize=(6, 0.35 * max(len(table), 1) + 1.2))
    ax.barh(table["rule"], table["total_s"])
    for i, (s, n) in enumerate(zip(table["total_s"], table["jobs"])):
        ax.text(s, i, f" {s:.1f} s ({n} jobs)", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("wall time, all jobs (s)")
    return fig


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())
