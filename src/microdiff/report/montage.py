"""The per-sample montage: a full view from a pyramid level and zoomed crops at native resolution.

Top row: the whole image (raw, display range from the sample's normalization) with nuclei
outlined in cyan and cells in yellow and the crops marked A, B, C..., beside the same view with
every nucleus filled in the colour of its mean uncertainty. Below, one column per crop, read at
level 0 (one image pixel per pixel or more on screen): raw with outlines, restored with outlines
(when restoration ran), and the per-pixel uncertainty masked to the objects. Crops are chosen
from segments.parquet: where nuclei are densest, at the most uncertain nucleus, and at a typical
(median uncertainty) nucleus. The cost is one pyramid level of about `max_px` pixels plus the
crops, whatever the image size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..label_maps import inner_boundaries
from .common import (
    channel_index,
    label_names,
    level0_array,
    open_store,
    pixel_size,
    plt,
    read_plane,
    read_window,
    stretch,
)
from .panel import Panel, colorbar

NUCLEI, CELLS = (0.0, 1.0, 1.0), (1.0, 0.85, 0.0)  # cyan, yellow: distinct on grey and for CVD
CMAP = "magma"


def _window(cy: float, cx: float, crop: int, shape) -> tuple[int, int, int, int]:
    """A crop x crop box centred near (cy, cx), moved inside an image of `shape` (Y, X)."""
    h, w = min(crop, shape[0]), min(crop, shape[1])
    y0 = int(np.clip(round(cy - h / 2), 0, shape[0] - h))
    x0 = int(np.clip(round(cx - w / 2), 0, shape[1] - w))
    return y0, y0 + h, x0, x0 + w


def _overlap(a, b) -> float:
    dy = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    dx = max(0, min(a[3], b[3]) - max(a[2], b[2]))
    return dy * dx / max((a[1] - a[0]) * (a[3] - a[2]), 1)


def pick_crops(segments: pd.DataFrame | None, shape, crop: int = 256, n: int = 3) -> list[dict]:
    """Up to `n` crop boxes (y0, y1, x0, x1) in level-0 pixels of a (Y, X) image, each with a
    `why` and (3D) the `plane` of the nucleus it is centred on: the window holding the most
    nuclear centroids, then the most uncertain nucleus, then a typical one (median
    uncertainty), then the next most uncertain ones; a crop overlapping an earlier one by more
    than a quarter is skipped. No nuclei: one crop at the centre."""
    shape = tuple(shape[-2:])
    nuc = pd.DataFrame() if segments is None else segments[segments["kind"] == "nuclei"]
    if nuc.empty:
        return [{"box": _window(shape[0] / 2, shape[1] / 2, crop, shape), "why": "centre",
                 "plane": None, "mark": None}]  # fmt: skip
    cy, cx = nuc["centroid_y"].to_numpy(), nuc["centroid_x"].to_numpy()
    cz = nuc["centroid_z"].to_numpy() if "centroid_z" in nuc else None
    # densest window: centroids binned at a quarter crop, summed over a crop-sized neighbourhood
    from scipy.ndimage import uniform_filter

    cell = max(crop // 4, 1)
    grid = np.zeros((shape[0] // cell + 1, shape[1] // cell + 1))
    np.add.at(grid, ((cy // cell).astype(int), (cx // cell).astype(int)), 1)
    dense = uniform_filter(grid, size=4, mode="constant")
    gy, gx = np.unravel_index(int(np.argmax(dense)), dense.shape)
    box = _window((gy + 0.5) * cell, (gx + 0.5) * cell, crop, shape)
    near = np.argmin(np.hypot(cy - (box[0] + box[1]) / 2, cx - (box[2] + box[3]) / 2))
    picks = [{"box": box, "why": "most nuclei", "at": int(near), "mark": None}]
    unc = np.nan_to_num(nuc["uncertainty"].to_numpy(np.float64), nan=-np.inf)
    order = np.argsort(-unc, kind="stable")
    median = int(np.argsort(unc, kind="stable")[len(unc) // 2])
    first = int(order[0])
    inside = [p for p in picks if _holds(p["box"], cy[first], cx[first])]
    if inside:  # the densest crop already shows the most uncertain nucleus: say so, mark it
        inside[0].update(why="most nuclei, most uncertain nucleus", at=first,
                         mark=(cy[first], cx[first]))  # fmt: skip
    elif n > 1:
        box = _window(cy[first], cx[first], crop, shape)
        picks.append({"box": box, "why": "most uncertain nucleus", "at": first,
                      "mark": (cy[first], cx[first])})  # fmt: skip
    candidates = [(median, "typical nucleus")] + [(int(i), "uncertain nucleus") for i in order[1:]]
    for i, why in candidates:
        if len(picks) >= n:
            break
        box = _window(cy[i], cx[i], crop, shape)
        if all(_overlap(box, p["box"]) <= 0.25 for p in picks):
            picks.append({"box": box, "why": why, "at": i, "mark": (cy[i], cx[i])})
    for p in picks:
        at = p.pop("at")
        p["plane"] = None if cz is None else int(round(cz[at]))
        p["id"] = int(nuc["id"].iloc[at])
    return picks[:n]


def _holds(box, y: float, x: float) -> bool:
    return box[0] <= y < box[1] and box[2] <= x < box[3]


def _grey_rgba(gray: np.ndarray) -> np.ndarray:
    """A grey 0..1 image as the 8-bit RGBA a panel draws of it: x 255 in the image's float
    type, truncated, as `panel._rgba8` converts an RGB image (the grey converted once, the
    four bytes of a pixel written as one 32-bit word)."""
    packed = np.empty(gray.shape, "<u4")
    np.multiply((gray * 255).astype(np.uint8), np.uint32(0x010101), out=packed)
    packed |= np.uint32(0xFF000000)  # opaque
    return packed.view(np.uint8).reshape(*gray.shape, 4)


def _outline(gray: np.ndarray, nuclei=None, cells=None, edges=None) -> np.ndarray:
    """`gray` with the boundaries of the cells (yellow), then of the nuclei (cyan), as the
    8-bit RGBA a panel draws (`_grey_rgba`; the colours x 255 in the image's type). `edges`:
    those boundaries as `_edges` finds them, where the caller has them (the labels are then
    not needed)."""
    rgba = _grey_rgba(gray)
    for mask, colour in edges if edges is not None else _edges(nuclei, cells):
        rgba[mask, :3] = np.asarray(colour, gray.dtype) * 255
    return rgba


def _edges(nuclei=None, cells=None) -> list:
    """(boundary mask, colour) of the cells, then of the nuclei (those given): found once for
    the crops of one place (raw and restored show the same outlines)."""
    return [(inner_boundaries(lab), colour)
            for lab, colour in ((cells, CELLS), (nuclei, NUCLEI)) if lab is not None]  # fmt: skip


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """`binary_dilation(mask, iterations=steps)` (4-connected, nothing beyond the edge): every
    pixel within `steps` face steps of the mask, by shifted ORs."""
    out = mask.copy()
    for _ in range(steps):
        prev = out.copy()
        for axis in range(mask.ndim):
            head = (slice(None),) * axis + (slice(1, None),)
            tail = (slice(None),) * axis + (slice(None, -1),)
            out[head] |= prev[tail]
            out[tail] |= prev[head]
    return out


def _object_values(lab: np.ndarray, ids, values) -> np.ndarray:
    """A float image holding `values[k]` on the pixels of object `ids[k]`, NaN elsewhere."""
    ids = np.asarray(ids, np.int64)
    lut = np.full(int(max(ids.max(initial=0), lab.max(initial=0))) + 1, np.nan)
    lut[ids] = values
    out = lut[lab]
    out[lab == 0] = np.nan
    return out


def _scale_bar(panel, px_um: float | None, factor: float = 1.0) -> None:
    """A white scale bar (a round number of micrometers, about a fifth of the panel)."""
    if not px_um:
        return
    height, width_px = panel.shape
    um = px_um * factor * width_px / 5
    nice = min((v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if v >= um),
               default=um)  # fmt: skip
    length = nice / (px_um * factor)
    x0, y0 = 0.04 * width_px, 0.95 * (height - 0.5)  # as on an imshow's y axis, bottom at h - 1/2
    panel.line([x0, x0 + length], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    panel.text(x0, y0 - 0.015 * (height - 0.5), f"{nice:g} µm", color="white", fontsize=8,
               va="bottom")  # fmt: skip


def montage_figure(
    raw,
    segmentation=None,
    restored=None,
    norm: Mapping | None = None,
    segments: pd.DataFrame | None = None,
    max_px: int = 512,
    crop: int = 256,
    crops: int = 3,
):
    """The montage of one sample (see the module docstring): channel 0, display range from
    the sample's normalization statistics when given."""
    lo = hi = None
    if norm is not None:
        lo, hi = norm["channels"][0]["low"], norm["channels"][0]["high"]
    raw = open_store(raw)  # each store opened once: the crops read them many times
    segmentation = open_store(segmentation) if segmentation is not None else None
    restored = open_store(restored) if restored is not None else None
    px_um = pixel_size(raw)
    small, raw0 = read_plane(raw, max_px=max_px)  # small images: each plane read once
    # ([Z,] Y, X) at level 0, as `full_shape` reads it: the plane's, or the array's less C
    shape = raw0.shape if isinstance(raw0, np.ndarray) else tuple(raw0.shape[1:])
    base = stretch(small, lo, hi)
    factor = shape[-1] / base.shape[-1]
    kinds = label_names(segmentation) if segmentation is not None else []
    picks = pick_crops(segments, shape, crop, crops) if crops else []
    views = {kind: read_plane(segmentation, labels=kind, max_px=max_px)
             for kind in ("nuclei", "cells") if kind in kinds}  # fmt: skip
    nuclei = views["nuclei"][0] if "nuclei" in views else None
    cells = views["cells"][0] if "cells" in views else None
    # the per-pixel uncertainty is shown on the nuclei (and their rims): with nuclei only
    std = channel_index(segmentation, "nuclei_std") if "nuclei" in kinds else None

    rows = 1 + (1 + (restored is not None) + (std is not None)) * bool(picks)
    ncol = max(len(picks), 1) * 2  # top panels span half the columns, crops two columns each
    # at 100 dpi: the full views at least at their pixel size, every crop at least 1:1
    width = max(2 * base.shape[-1], 1.35 * crop * len(picks), 600) / 100
    top = width / 2 * base.shape[0] / base.shape[1]
    fig = plt.figure(figsize=(width, top + (rows - 1) * width / ncol * 2 + 0.4 * rows))
    ratios = [top] + [width / ncol * 2] * (rows - 1)
    grid = fig.add_gridspec(rows, ncol, height_ratios=ratios, hspace=0.12, wspace=0.06)

    n_nuc = 0 if nuclei is None else len(np.unique(nuclei)) - (nuclei == 0).any()
    ax = Panel(fig, grid[0, : ncol // 2] if picks else grid[0, :1], _outline(base, nuclei, cells))
    ax.set_title(f"whole image, 1:{factor:.0f}\n{n_nuc} nuclei outlined cyan"
                 + (", cells yellow" if cells is not None else ""), fontsize=9)  # fmt: skip
    for k, p in enumerate(picks):
        y0, y1, x0, x1 = (v / factor for v in p["box"])
        ax.rectangle((x0, y0), x1 - x0, y1 - y0, ec="white", lw=1.2)
        ax.text(x0 + 2, y0 + 2, "ABCDEFGH"[k], color="white", fontsize=9, va="top",
                fontweight="bold")  # fmt: skip
    _scale_bar(ax, px_um, factor)

    if nuclei is not None and segments is not None:
        nuc = segments[segments["kind"] == "nuclei"]
        fill = _object_values(nuclei, nuc["id"], nuc["uncertainty"].to_numpy(np.float64))
        finite = fill[np.isfinite(fill)]
        rgb, im = _over(base, fill, *((finite.min(), finite.max()) if finite.size else (0, 1)))
        ax = Panel(fig, grid[0, ncol // 2 :], rgb)
        ax.set_title("per-nucleus uncertainty\n(mean std of its nuclear probability)", fontsize=9)
        colorbar(fig, ax, im, "mean std per nucleus")

    # every crop's windows, read together where the crops lie close (see `_windows`); the
    # restored image and the uncertainty are shown in the crops only: only their chunks read
    panels = [("raw", _windows(raw0, picks))]
    if restored is not None and picks:
        panels.append(("restored", _windows(level0_array(restored), picks)))
    labels = {kind: _windows(view[1], picks, labels=kind) for kind, view in views.items()}
    stds = None
    if std is not None and picks:
        stds = _windows(level0_array(segmentation), picks, channel=std)
    vmax = None
    for k, p in enumerate(picks):
        box = p["box"]
        labs = {kind: windows[k] for kind, windows in labels.items()}
        edges = _edges(labs.get("nuclei"), labs.get("cells"))
        for r, (name, windows) in enumerate(panels, start=1):
            img = stretch(windows[k], lo, hi)
            cell = grid[r, 2 * k : 2 * k + 2]
            ax = Panel(fig, cell, _outline(img, edges=edges))
            if r == 1:
                gray = img  # the raw crop: also under the uncertainty below
                ax.set_title(f"{'ABCDEFGH'[k]}: {p['why']}\nnative pixels y {box[0]}-{box[1]}, "
                             f"x {box[2]}-{box[3]}", fontsize=8)  # fmt: skip
            _frame(ax, name if k == 0 else None)
            _mark(ax, p)
            _scale_bar(ax, px_um)
        if std is not None:
            s = stds[k]
            fg = _grow(labs["nuclei"] > 0, 3)  # and their boundaries
            if vmax is None:  # one colour scale for all crops
                vmax = float(np.nanpercentile(np.where(fg, s, np.nan), 99.5)) if fg.any() else 1
            rgb, im = _over(gray, np.where(fg, s, np.nan), 0, max(vmax, 1e-6))
            ax = Panel(fig, grid[len(panels) + 1, 2 * k : 2 * k + 2], rgb)
            _frame(ax, "uncertainty on nuclei" if k == 0 else None)
            _mark(ax, p)
            if k == len(picks) - 1:
                colorbar(fig, ax, im, "std of nuclear probability")
    return fig


def _windows(array, picks: list[dict], **kw) -> list[np.ndarray]:
    """The level-0 window of every pick (`read_window(array, box, plane=..., **kw)`). Picks
    on one plane whose bounding box is at most three times their area together are cut from
    one read of that box: for an image a few crops large, one read (and one decompression of
    its chunks) instead of one per crop."""
    out: list = [None] * len(picks)
    planes: dict = {}
    for i, p in enumerate(picks):
        planes.setdefault(p["plane"], []).append(i)
    for plane, idx in planes.items():
        boxes = [picks[i]["box"] for i in idx]
        y0, x0 = min(b[0] for b in boxes), min(b[2] for b in boxes)
        y1, x1 = max(b[1] for b in boxes), max(b[3] for b in boxes)
        area = sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes)
        if len(idx) > 1 and (y1 - y0) * (x1 - x0) <= 3 * area:
            whole = read_window(array, (y0, y1, x0, x1), plane=plane, **kw)
            for i, b in zip(idx, boxes):
                out[i] = whole[b[0] - y0 : b[1] - y0, b[2] - x0 : b[3] - x0]
        else:
            for i, b in zip(idx, boxes):
                out[i] = read_window(array, b, plane=plane, **kw)
    return out


def _frame(panel: Panel, label: str | None = None) -> None:
    """A crop panel: a thin frame, no ticks, `label` left of it (as a y label would be)."""
    panel.rectangle((0, 0), 1, 1, frac=True, clip_on=False, lw=plt.rcParams["axes.linewidth"],
                    ec="black")  # fmt: skip
    if label:
        panel.text(-0.02, 0.5, label, frac=True, rotation=90, ha="right", va="center",
                   fontsize=9)  # fmt: skip


def _mark(panel: Panel, pick: dict) -> None:
    """A ring around the nucleus a crop was chosen for (offset from it, not hiding it)."""
    if pick.get("mark") is None:
        return
    y, x = pick["mark"][0] - pick["box"][0], pick["mark"][1] - pick["box"][2]
    panel.ring(x, y, 30, ec="white", lw=1.2, ls="--")


def _over(gray: np.ndarray, values: np.ndarray, vmin: float, vmax: float):
    """An image of `values` in CMAP (vmin..vmax) where they are finite, over `gray` at 60%
    elsewhere, as the 8-bit RGBA a panel draws (the float RGB converted as `panel._rgba8`
    converts it), and the colour scale for its colour bar: what a grey imshow under a
    masked one draws, as one image (matplotlib resamples a masked image twice, data and
    mask)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scale = ScalarMappable(Normalize(vmin, vmax), colormaps[CMAP])
    shade = gray * 0.6
    rgba = _grey_rgba(shade)  # 8-bit, as panel._rgba8 converts the float RGB
    ok = np.isfinite(values)
    rgba[ok, :3] = scale.to_rgba(values[ok])[:, :3].astype(shade.dtype) * 255
    return rgba, scale
