"""Quality control over the experiment: one row per sample, odd samples flagged and listed first.

A sample is flagged on a measure when its robust z-score, (x - median) / (1.4826 * MAD) over
the experiment's samples, is beyond +-`THRESHOLD` (3.5, Iglewicz and Hoaglin's cut-off). The
scale is floored at `REL_FLOOR` (5%) of the median's magnitude, so that samples which agree
to a few percent are not flagged for a difference nobody would call odd, and with fewer than
`MIN_SAMPLES` (3) samples nothing is z-flagged (there is no usual range to be outside of).
Whatever the experiment size, a sample is also flagged when a channel is constant (its 1st and
99.8th percentiles are equal) or when no nucleus was found.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..io import ngff
from ..tiling import axis_names
from .common import full_shape, level0_array, open_store, pixel_size, plt, read_window
from .figures import noise_curve

THRESHOLD = 3.5
REL_FLOOR = 0.05
MIN_SAMPLES = 3
RULE = (
    f"robust z = (x - median) / (1.4826 MAD) over the samples, flagged beyond +-{THRESHOLD:g} "
    f"(scale at least {REL_FLOOR:.0%} of |median|; needs {MIN_SAMPLES} or more samples); also "
    "flagged: a constant channel, no nuclei"
)
NOT_MEASURES = {"sample", "flags", "n_flags", "constant"}
_NO_CURVE = pd.DataFrame(columns=["mean", "variance", "n"])


def _name(label: str, c: int) -> str:
    clean = re.sub(r"[^0-9A-Za-z]+", "_", str(label)).strip("_")
    return clean or f"ch{c}"


def channel_names(raw) -> list[str]:
    labels = ngff.channel_labels(open_store(raw).attrs)
    return [_name(label, c) for c, label in enumerate(labels)]


def measured_noise_sd(image: np.ndarray, at: float) -> float:
    """The noise standard deviation at intensity `at` of a native-resolution (Y, X) image: a
    line (Poisson-Gaussian: variance = gain * mean + read variance) fitted to `noise_curve`."""
    return curve_noise_sd(noise_curve(image), at)


def curve_noise_sd(curve: pd.DataFrame, at: float) -> float:
    """`measured_noise_sd` from the image's `noise_curve` already measured."""
    if len(curve) < 2:
        return float(np.sqrt(curve["variance"].iloc[0])) if len(curve) else math.nan
    slope, icpt = np.polyfit(curve["mean"], curve["variance"], 1)
    return float(np.sqrt(max(slope * at + icpt, 0.0)))


def border_objects(labels, tiles: pd.DataFrame) -> set[int]:
    """Ids of objects that span a tile core border (stitched across tiles): for each inner
    border of the tile plan, the labels on its two sides are read (two planes of pixels) and
    an id found on both sides at the same place spans it."""
    nd = labels.ndim
    found: set[int] = set()
    for d, a in enumerate(axis_names(nd)):
        if f"{a}0" not in tiles:
            continue
        for b in sorted(set(int(v) for v in tiles[f"{a}0"]) - {0}):
            before = np.asarray(labels[(slice(None),) * d + (b - 1,)])
            after = np.asarray(labels[(slice(None),) * d + (b,)])
            same = (before == after) & (before > 0)
            found.update(int(i) for i in np.unique(before[same]))
    return found


def sample_qc(
    name: str,
    raw,
    norm: Mapping,
    segments: pd.DataFrame | None = None,
    tiles: pd.DataFrame | None = None,
    segmentation=None,
    classes: pd.DataFrame | None = None,
    noise_model: Mapping | None = None,
    noise_px: int = 1024,
    curves: Mapping | None = None,
) -> dict:
    """One row of the QC table for one sample (see `qc_table` for the columns).

    `curves` (channel -> `noise_curve` frame, from `figures.curves_by_sample`): the noise
    curves report_normalization measured on this image. They are used when the image is at
    most `noise_px` on its sides, where that rule measured the same pixels as the centre window
    here (the whole image at native resolution); a missing channel has no curve."""
    raw = open_store(raw)  # opened once, read for names, shape, scale and windows
    names = channel_names(raw) or [f"ch{c}" for c in range(len(norm["channels"]))]
    shape = full_shape(raw)
    row: dict = {"sample": name}
    pct = norm.get("percentiles", [1.0, 99.8])
    constant = False
    h = min(noise_px, shape[-2])
    w = min(noise_px, shape[-1])
    y0, x0 = (shape[-2] - h) // 2, (shape[-1] - w) // 2
    level0 = level0_array(raw)
    if curves is not None and max(shape[-2:]) > noise_px:
        curves = None  # that rule read a smaller pyramid level: measured here
    for c, ch in enumerate(norm["channels"]):
        n = names[c] if c < len(names) else f"ch{c}"
        row[f"{n}_p{pct[0]:g}"] = ch["low"]
        row[f"{n}_median"] = ch.get("median", math.nan)
        row[f"{n}_p{pct[1]:g}"] = ch["high"]
        constant |= not ch["high"] > ch["low"]
        at = ch.get("median", ch["low"])
        if curves is not None:
            curve = curves.get(c, _NO_CURVE)
            row[f"{n}_noise_sd"] = curve_noise_sd(curve, at)
        else:
            centre = read_window(level0, (y0, y0 + h, x0, x0 + w), channel=c)
            row[f"{n}_noise_sd"] = measured_noise_sd(centre, at)
        if noise_model is not None:
            a, b = noise_model["a"][c], noise_model["b"][c]
            row[f"{n}_restore_noise_sd"] = float(np.sqrt(max(a * ch.get("median", 0) + b, 0)))
    row["constant"] = bool(constant)
    px = pixel_size(raw) or 1.0
    size_mm = float(np.prod(shape)) * (px / 1000.0) ** len(shape)
    unit = "mm2" if len(shape) == 2 else "mm3"
    nuc = pd.DataFrame() if segments is None else segments[segments["kind"] == "nuclei"]
    if segments is not None:
        row["nuclei"] = len(nuc)
        if (segments["kind"] == "cells").any():
            row["cells"] = int((segments["kind"] == "cells").sum())
        row[f"nuclei_per_{unit}"] = len(nuc) / size_mm
        row["uncertainty"] = float(nuc["uncertainty"].mean()) if len(nuc) else math.nan
        row["consistency"] = float(nuc["consistency"].mean()) if len(nuc) else math.nan
    if tiles is not None and segmentation is not None and len(nuc):
        import zarr

        labels = zarr.open_group(str(segmentation), mode="r")["labels/nuclei/0"]
        row["tile_border_share"] = len(border_objects(labels, tiles)) / len(nuc)
    if classes is not None and len(classes):
        frac = classes["class"].astype(str).value_counts(normalize=True)
        for cls, f in sorted(frac.items()):
            row[f"class_{cls}"] = float(f)
    return row


def center_scale(values) -> tuple[float, float]:
    """The median and the scale max(1.4826 MAD, REL_FLOOR |median|) of the finite values
    (NaN, NaN with fewer than MIN_SAMPLES of them)."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < MIN_SAMPLES:
        return math.nan, math.nan
    med = float(np.median(x))
    return med, max(1.4826 * float(np.median(np.abs(x - med))), REL_FLOOR * abs(med))


def robust_z(values) -> np.ndarray:
    """(x - median) / scale (see `center_scale`); NaN where the scale is 0 (every sample
    equal and zero) or there are fewer than MIN_SAMPLES values."""
    x = np.asarray(values, np.float64)
    med, scale = center_scale(x)
    z = np.full(x.shape, np.nan)
    if scale > 0:
        ok = np.isfinite(x)
        z[ok] = (x[ok] - med) / scale
    return z


def measures(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in NOT_MEASURES and c not in ("cells",)]


def qc_table(rows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The QC table (flagged samples first, then by name) and the robust z-scores behind it.

    Columns: per channel the normalization percentiles and median, the noise sd at the median
    measured on the sample (a native-resolution centre window) and from restore's noise model;
    nuclei (and cells) found, nuclei per mm2 (mm3 in 3D), mean per-nucleus uncertainty and
    consistency, the share of nuclei spanning a tile border, the class fractions; `flags`
    (why, '' when none) and `n_flags`.
    """
    table = pd.DataFrame(list(rows))
    for col in [c for c in table.columns if c.startswith("class_")]:
        table[col] = table[col].fillna(0.0)
    z = pd.DataFrame({c: robust_z(table[c]) for c in measures(table)}, index=table.index)
    flags = []
    for i in table.index:
        why = []
        if table.at[i, "constant"]:
            why.append("constant channel")
        if "nuclei" in table and table.at[i, "nuclei"] == 0:
            why.append("no nuclei")
        for c in z.columns:
            if abs(z.at[i, c]) > THRESHOLD:
                why.append(f"{c} {_fmt(table.at[i, c])} (z {z.at[i, c]:+.1f})")
        flags.append("; ".join(why))
    table["flags"] = flags
    table["n_flags"] = [0 if not f else f.count(";") + 1 for f in flags]
    order = table.sort_values(["n_flags", "sample"], ascending=[False, True]).index
    cols = ["sample", "flags", "n_flags"] + [c for c in table.columns if c not in
                                             ("sample", "flags", "n_flags")]  # fmt: skip
    return table.loc[order, cols].reset_index(drop=True), z.loc[order].reset_index(drop=True)


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "-"
    return f"{f:.3g}" if abs(f) < 1e4 else f"{f:.0f}"


def qc_html(table: pd.DataFrame, z: pd.DataFrame) -> str:
    """The QC table as a page: the rule, then one row per sample, flagged rows first and shaded,
    the measures that flagged them in bold red."""
    n = int((table["n_flags"] > 0).sum())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns if c != "n_flags")
    body = []
    for i, row in table.iterrows():
        cells = []
        for c in table.columns:
            if c == "n_flags":
                continue
            odd = c in z.columns and abs(z.at[i, c]) > THRESHOLD
            style = ' class="odd"' if odd else ""
            text = row[c] if c in ("sample", "flags") else _fmt(row[c])
            cells.append(f"<td{style}>{html.escape(str(text))}</td>")
        body.append(f"<tr{' class=flagged' if row['n_flags'] else ''}>{''.join(cells)}</tr>")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>QC per sample</title>
<style>body{{font-family:sans-serif;font-size:13px;margin:12px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
td:nth-child(-n+2),th:nth-child(-n+2){{text-align:left}}th{{background:#eee;position:sticky;top:0}}
tr.flagged td{{background:#fde8e8}}td.odd{{color:#b00;font-weight:bold}}</style></head><body>
<h3>Quality control: {len(table)} samples, {n} flagged</h3>
<p>Rule: {html.escape(RULE)}. Flagged samples come first; the measures that flagged them are in
red. Intensities and noise are in the raw image's units; uncertainty is the mean over nuclei of
the per-pixel std of the nuclear probability across the K segmentation samples, consistency the
mean share of those samples that agree on each nucleus; tile_border_share is the share of nuclei
that span a tile border (stitched); class_* are the fractions of classified nuclei.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></body></html>
"""


def qc_figure(table: pd.DataFrame, z: pd.DataFrame, label: int = 6):
    """One dot plot per measure: every sample a dot, the usual range (median +- THRESHOLD
    scales) shaded, flagged samples red and named (up to `label` per measure)."""
    cols = list(z.columns)
    ncol = 4
    nrow = max(1, math.ceil(len(cols) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 1.25 * nrow + 0.6), squeeze=False)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.25, 0.25, len(table))
    for ax, c in zip(axes.flat, cols):
        x = table[c].to_numpy(np.float64)
        zz = z[c].to_numpy()
        odd = np.abs(np.nan_to_num(zz)) > THRESHOLD
        med, scale = center_scale(x)
        if scale > 0:  # the usual range
            ax.axvspan(med - THRESHOLD * scale, med + THRESHOLD * scale, color="#e4e4e4")
        ax.scatter(x[~odd], jitter[~odd], s=10, color="#4c78a8")
        ax.scatter(x[odd], jitter[odd], s=18, color="#d62728")
        for j in np.flatnonzero(odd)[:label]:
            ax.annotate(str(table["sample"].iloc[j]), (x[j], jitter[j]), fontsize=7,
                        color="#d62728", xytext=(2, 2), textcoords="offset points")  # fmt: skip
        ax.set_ylim(-0.6, 0.6)
        ax.set_yticks([])
        ax.set_title(c, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(cols) :]:
        ax.set_axis_off()
    n = int((table["n_flags"] > 0).sum())
    fig.suptitle(f"{len(table)} samples, {n} flagged (red; grey band: |robust z| <= "
                 f"{THRESHOLD:g})", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig
