"""Figures of the experiment's statistics: normalization and noise, features by class, class
counts per sample, classifier metrics. Each returns a matplotlib Figure (see `common.save`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..binning import bin_index
from .common import plt

FEATURES = ("area_px", "volume_px", "eccentricity", "solidity", "axis_major_px", "neighbors")


def noise_curve(image: np.ndarray, bins: int = 16, max_pairs: int = 1 << 17) -> pd.DataFrame:
    """Noise variance against local mean of one (Y, X) image: `mean`, `variance`, `n` (the
    pixel pairs measured in the bin).

    The noise is measured on differences of horizontal neighbours, (x[i+1] - x[i]) / sqrt(2),
    per bin of the local 3x3 mean (quantile bins): the variance of the differences within 4
    robust standard deviations (1.4826 MAD) of their median, so edges hardly enter.
    Poisson-Gaussian noise gives a straight line (slope = gain).

    An image with more than `max_pairs` pairs is measured on every k-th row only (rows spread
    evenly over the image, the smallest k that leaves at most `max_pairs` pairs; the local
    mean still from the rows around each). The noise of different rows is independent, so
    this is a fixed random-like sample of the pairs: each bin keeps thousands of them and its
    variance estimate a relative standard error of about sqrt(2 / n) (under 2% at the
    default), small beside the spread between samples the curve is drawn to show, at a cost
    that does not grow with the image. Smaller images use every pair.
    """
    img = np.asarray(image)
    h, w = img.shape
    step = max(1, math.ceil(h * max(w - 1, 1) / max_pairs))
    rows = np.arange((h - 1) % step // 2, h, step)  # centred in the image
    mid = img[rows].astype(np.float64)
    d = ((mid[:, 1:] - mid[:, :-1]) / math.sqrt(2)).ravel()
    # the 3x3 mean, edges mirrored (as scipy's uniform_filter, mode 'reflect'); summed before
    # the one division, so equal neighbourhoods of integer counts get equal means (one bin)
    col = img[np.maximum(rows - 1, 0)] + mid + img[np.minimum(rows + 1, h - 1)]
    col = np.pad(col, ((0, 0), (1, 1)), mode="symmetric")
    mean = ((col[:, :-3] + col[:, 1:-2] + col[:, 2:-1]) / 9).ravel()
    # bin edges: quantiles of 2^14 to 2^15 of the means, evenly spread (a bin's share of the
    # pairs is then 1/bins give or take half a percent; each bin still takes every pair whose
    # mean falls in it, the outer bins those beyond the edges)
    edges = np.unique(np.quantile(mean[:: max(1, mean.size >> 14)], np.linspace(0, 1, bins + 1)))
    which = bin_index(mean, edges)
    order = np.argsort(which, kind="stable")  # grouped by bin (radix sort)
    ends = np.cumsum(np.bincount(which, minlength=len(edges) - 1))
    d, mean = d[order], mean[order]
    out = []
    for stop, start in zip(ends, np.r_[0, ends[:-1]]):
        v = d[start:stop]
        if v.size < 50:
            continue
        dev = np.abs(v - _median(v))
        keep = dev <= 4 * 1.4826 * max(float(_median(dev)), 0.5)  # drop edges, not noise
        kept = v[keep]
        var = float(np.mean((kept - kept.mean()) ** 2))
        out.append({"mean": float(mean[start:stop].mean()), "variance": var, "n": v.size})
    return pd.DataFrame(out, columns=["mean", "variance", "n"])


def _median(v: np.ndarray):
    """np.median of a 1-D finite array, the same value, without its general-case overhead."""
    k = v.size // 2
    if v.size % 2:
        return np.partition(v, k)[k]
    part = np.partition(v, (k - 1, k))
    return (part[k - 1] + part[k]) / 2


CURVE_COLUMNS = ["sample", "channel", "mean", "variance", "n", "noise_px"]


def noise_curves_table(noise: Mapping, noise_px: int) -> pd.DataFrame:
    """The `noise_curve` frames of every sample and channel (`noise`: sample -> list of one
    frame per channel) as one table, with the `noise_px` they were read at: written by
    report_normalization, so that report_qc reads its curves instead of measuring them again."""
    parts = [
        curve.assign(sample=sample, channel=c, noise_px=int(noise_px))
        for sample, curves in noise.items()
        for c, curve in enumerate(curves)
    ]
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    table = pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]
    return table.astype({"channel": np.int64, "n": np.int64, "noise_px": np.int64})


def curves_by_sample(table: pd.DataFrame, noise_px: int) -> dict[str, dict[int, pd.DataFrame]]:
    """`noise_curves_table` back as sample -> channel -> curve (`mean`, `variance`, `n`), only
    its rows read at `noise_px` (a curve read at another size is not the one wanted)."""
    table = table[table["noise_px"] == int(noise_px)]
    out: dict[str, dict[int, pd.DataFrame]] = {}
    for (sample, c), rows in table.groupby(["sample", "channel"], sort=False):
        curve = rows[["mean", "variance", "n"]].reset_index(drop=True)
        out.setdefault(str(sample), {})[int(c)] = curve
    return out


def normalization_figure(norms: Mapping, noise: Mapping | None = None, legend: int = 10):
    """Per channel: intensity histograms of every sample with its percentile range (from each
    sample's norm.json), and the noise variance-vs-mean curves (`noise`: sample -> list of one
    `noise_curve` frame per channel), titled with the median over samples of the fitted slope.

    The ranges are shaded with an opacity that falls with the number of samples (0.05 for up
    to 12), so that many samples' shades add up to a range of darkness (where most samples'
    ranges agree), not to a solid block. The samples are named in a legend when there are at
    most `legend` of them: beyond that the line colours repeat and a legend names none of
    them (it would cover the plots); a note gives the number of samples instead."""
    first = next(iter(norms.values()))
    n_ch = len(first["channels"])
    rows = 2 if noise else 1
    fig, axes = plt.subplots(rows, n_ch, figsize=(4.2 * n_ch, 3.2 * rows), squeeze=False)
    alpha = min(0.05, 0.6 / len(norms))
    for sample, norm in norms.items():
        for c, (hist, ch) in enumerate(zip(norm["histograms"], norm["channels"])):
            ax = axes[0, c]
            x = hist["lo"] + np.asarray(hist["bins"], np.float64) * hist["width"]
            counts = np.asarray(hist["counts"], np.float64)
            ax.plot(x, counts / max(counts.sum(), 1), lw=1, label=sample)
            ax.axvspan(ch["low"], ch["high"], alpha=alpha)
    for c in range(n_ch):
        axes[0, c].set_yscale("log")
        axes[0, c].set_title(f"channel {c}: histogram, percentile range", fontsize=9)
        axes[0, c].set_xlabel("intensity")
    if noise:
        slopes: dict[int, list[float]] = {}
        for sample, curves in noise.items():
            for c, curve in enumerate(curves[:n_ch]):
                axes[1, c].plot(curve["mean"], curve["variance"], "o-", ms=3, lw=1, label=sample)
                if len(curve) >= 2:
                    slopes.setdefault(c, []).append(
                        np.polyfit(curve["mean"], curve["variance"], 1)[0]
                    )
        for c in range(n_ch):
            ax = axes[1, c]
            title = f"channel {c}: noise variance vs mean"
            if len(slopes.get(c, [])) == 1:
                title += f" (slope {slopes[c][0]:.2f})"
            elif slopes.get(c):
                title += f"\nslope {np.median(slopes[c]):.2f} (median of {len(slopes[c])} samples)"
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("local mean")
            ax.set_ylabel("noise variance")
    if len(norms) <= legend:
        axes[0, 0].legend(fontsize=7)
        if noise:
            axes[1, 0].legend(fontsize=7)
    else:
        axes[0, 0].text(0.98, 0.97, f"{len(norms)} samples, one line each", fontsize=7,
                        transform=axes[0, 0].transAxes, ha="right", va="top")  # fmt: skip
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
    """Stacked horizontal bars of class fractions, one row per sample (sorted by name, the first
    at the top), with the object count at the end of each bar: legible for a plate of hundreds
    of samples (the figure grows in height), where vertical bars' names ran into each other."""
    table = counts.pivot_table(index="sample", columns="class", values="count", fill_value=0)
    frac = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    n = len(table)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.2 * n + 1.3)))
    names = frac.index.astype(str)
    left = np.zeros(n)
    for cls in frac.columns:
        ax.barh(names, frac[cls], left=left, height=0.8, label=str(cls))
        left += frac[cls].to_numpy()
    for i, total in enumerate(table.sum(axis=1)):
        ax.text(1.01, i, f"n={int(total)}", va="center", fontsize=7)
    ax.set_xlim(0, 1.12)
    ax.set_ylim(n - 0.5, -0.5)  # the first sample at the top
    ax.margins(y=0)
    ax.tick_params(axis="y", labelsize=7 if n > 20 else 9)
    ax.set_xlabel("fraction of objects")
    ax.legend(title="class", fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def metrics_figure(metrics: Mapping, n_classified: int | None = None):
    """The confusion matrix with accuracy and macro-F1 (supervised, diffusion), or BIC
    against the number of clusters (unsupervised). With `n_classified` (the objects the class
    counts hold) a note says how many of them the matrix counts, and why the rest are not in it."""
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
        note = counted_note(metrics, int(cm.sum()), n_classified)
        if note:
            ax.text(0.5, -0.32, note, transform=ax.transAxes, ha="center", va="top", fontsize=7,
                    wrap=True)  # fmt: skip
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


def counted_note(metrics: Mapping, n_matrix: int, n_classified: int | None) -> str:
    """Why the confusion matrix counts fewer objects than the class counts: it holds only the
    labelled objects evaluated (held out or out-of-fold); label rows that matched no object
    (`unmatched_labels`: reason -> count) are in neither."""
    if n_classified is None:
        return ""
    parts = [f"matrix: {n_matrix} labelled objects evaluated; class counts: {n_classified} "
             "classified objects"]  # fmt: skip
    if n_classified > n_matrix:
        parts.append(f"the {n_classified - n_matrix} others carry no label (or were used "
                     "for training)")  # fmt: skip
    unmatched = metrics.get("unmatched_labels") or {}
    if unmatched:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(unmatched.items()))
        parts.append(f"label rows matched to no object ({why})")
    return "; ".join(parts)
