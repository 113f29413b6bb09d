"""Pictures drawn straight on a matplotlib figure, without an Axes per picture: the montage's
panels (`Panel`: an RGB image where an aspect-equal, axis-off Axes would show it, with titles,
text, lines, rectangles and rings in its pixel coordinates) and their colour bars (`colorbar`).
An Axes' tick, spine and layout machinery, all switched off in a montage, cost more to make
than its pictures cost to draw (issue 15); the pixels are imshow's (tests/unit/
test_report_render.py).
"""

from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist

from .common import plt


class Panel:
    """An RGB image drawn straight on the figure where an aspect-equal, axis-off Axes in grid
    cell `spec` would show it with imshow (nearest), and its annotations: the same pixels
    without an Axes, whose ticks, spines and layout (all switched off) cost more to make than
    the picture costs to draw. `data` maps image pixels (x right, y down, pixel centres at
    integers, as imshow's axes) to the figure, `frac` the panel's fraction (0..1, as
    `transAxes`); annotations are clipped to the panel as an Axes clips its patches."""

    def __init__(self, fig, spec, rgb: np.ndarray):
        from matplotlib.transforms import Bbox, BboxTransform, BboxTransformTo, TransformedBbox

        self.fig, self.shape = fig, rgb.shape[:2]
        h, w = self.shape
        cell = spec.get_position(fig)
        fw, fh = fig.get_size_inches()
        self.box = cell.shrunk_to_aspect(h / w, cell, fh / fw).anchored("C", cell)
        self.bbox = TransformedBbox(self.box, fig.transFigure)
        self.frac = BboxTransformTo(self.bbox)
        self.data = BboxTransform(Bbox([[-0.5, h - 0.5], [w - 0.5, -0.5]]), self.bbox)
        fig.add_artist(Picture(self.bbox, _rgba8(rgb)))
        self.title = None

    def set_title(self, label: str, fontsize: float) -> None:
        """A title centred above the panel, as `Axes.set_title` places it."""
        from matplotlib.transforms import ScaledTranslation

        pad = ScaledTranslation(0, plt.rcParams["axes.titlepad"] / 72, self.fig.dpi_scale_trans)
        self.title = self.fig.text(0.5, 1.0, label, transform=self.frac + pad, ha="center",
                                   va="baseline", fontsize=fontsize)  # fmt: skip

    def text(self, x, y, s, frac: bool = False, **kw):
        kw.setdefault("zorder", 3)
        return self.fig.text(x, y, s, transform=self.frac if frac else self.data, **kw)

    def line(self, x, y, **kw):
        from matplotlib.lines import Line2D

        self._add(Line2D(x, y, transform=self.data, zorder=2, **kw))

    def rectangle(self, xy, width, height, frac: bool = False, **kw):
        self._add(plt.Rectangle(xy, width, height, fill=False, zorder=1,
                                transform=self.frac if frac else self.data, **kw))  # fmt: skip

    def ring(self, x, y, diameter_pt: float, **kw):
        """A circle `diameter_pt` points across around image pixel (x, y) (a scatter marker)."""
        from matplotlib.patches import Circle
        from matplotlib.transforms import ScaledTranslation

        at = ScaledTranslation(x, y, self.data)
        self._add(Circle((0, 0), diameter_pt / 144, fill=False, zorder=1,
                         transform=self.fig.dpi_scale_trans + at, **kw))  # fmt: skip

    def _add(self, artist) -> None:
        if artist.get_clip_on():
            artist.set_clip_box(self.bbox)
            # what it adds to the figure's tight box lies inside the picture's box, which is in
            # it already: not measured (a ring's curves cost most of `save`'s tight box)
            artist.set_in_layout(False)
        self.fig.add_artist(artist)


class Picture(Artist):
    """An 8-bit RGBA image filling `bbox` (figure pixels), drawn on the pixels a
    `BboxImage(bbox, interpolation="nearest", origin="upper")` draws (tests/unit/
    test_report_render.py compares them): the image is enlarged by repeating rows and columns
    (numpy indexing of 32-bit pixels) and handed to the renderer's `draw_image` as it is.
    BboxImage draws the same picture through matplotlib's general resampler, which converts
    the bytes to float RGBA, resamples them in premultiplied alpha and converts back: three
    times the CPU for the montage's thirteen panels (issue 15).

    Which source pixel lands on an output pixel is matplotlib's nearest-neighbour rule
    (`_image_resample.h`, accurate_interpolator_affine_nn): the output pixel's centre mapped
    back through the inverse of the image-to-pixel transform in 1/256 pixel steps, truncated,
    interpolated in floating point along each row from its first to its last pixel, the
    image flipped so that a centre on the edge of two pixels takes the upper-left one."""

    def __init__(self, bbox, rgba: np.ndarray):
        super().__init__()
        self.bbox, self.rgba = bbox, rgba
        self._packed = np.ascontiguousarray(rgba).view(np.uint32)[..., 0]

    def get_window_extent(self, renderer=None):
        return self.bbox

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        from matplotlib.backends.backend_agg import RendererAgg

        width, height = renderer.get_canvas_width_height()
        pixels = None
        if isinstance(renderer, RendererAgg) and renderer.get_image_magnification() == 1:
            pixels = _nearest(self._packed, self.bbox.frozen(), width, height)
        if pixels is None:  # not wholly on an Agg canvas (PDF, SVG): matplotlib's own drawing
            from matplotlib.image import BboxImage

            image = BboxImage(self.bbox, interpolation="nearest", origin="upper")
            image.set_data(self.rgba)
            image.set_figure(self.get_figure(root=False))
            image.draw(renderer)
            return
        out, x0, y0 = pixels
        gc = renderer.new_gc()
        gc.set_alpha(1.0)
        renderer.draw_image(
            gc, x0, y0, np.ascontiguousarray(out).view(np.uint8).reshape(*out.shape, 4)
        )
        gc.restore()
        self.stale = False


def _nearest(packed: np.ndarray, box, width: float, height: float):
    """The image (Y, X) of 32-bit RGBA pixels `packed` filling `box` (a Bbox in pixels of a
    width x height canvas), as matplotlib's nearest-neighbour resampling of a BboxImage
    makes it: (pixels bottom row first, x0, y0); None where the box is not wholly on the
    canvas (matplotlib's clipped spans end elsewhere) or empty."""
    from matplotlib.transforms import Affine2D, Bbox, BboxTransformTo

    clip = Bbox([[0, 0], [width, height]])
    e = box.extents
    if not (0 <= e[0] <= e[2] <= width and 0 <= e[1] <= e[3] <= height):
        return None
    # the output box rounded to pixel borders, as `_ImageBase._make_image` rounds it
    x0, y0 = np.floor(e[0] + 0.5), np.ceil(e[1] - 0.5 - 1e-8)
    x1, y1 = np.floor(e[2] + 0.5 + 1e-8), np.ceil(e[3] - 0.5)
    W, H = int(x1 - x0), int(y1 - y0)
    if W <= 0 or H <= 0:
        return None  # (BboxImage draws nothing either)
    h, w = packed.shape
    frac = Bbox(box.get_points() / [width, height])  # the box in canvas fractions
    # image to output pixels as `_make_image` and `_resample` compose it (the same floats)
    t = (
        Affine2D().translate(0, -h).scale(1, -1)
        + Affine2D().scale(frac.width / w, frac.height / h).translate(frac.x0, frac.y0)
        + BboxTransformTo(clip)
        + Affine2D().scale(1.0).translate(-x0, -y0)
    )
    t = Affine2D().translate(-w, 0).scale(-1, 1) + t
    t = Affine2D().translate(0, -h).scale(1, -1) + t
    m = t.get_matrix()
    sx, shy, shx, sy, tx, ty = m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]
    if shx != 0 or shy != 0:
        return None
    d = 1.0 / (sx * sy - shy * shx)  # agg::trans_affine::invert, term by term
    isx, isy = sy * d, sx * d
    itx = -tx * isx - ty * (-shx * d)
    ity = -tx * (-shy * d) - ty * isy
    scale = 256.0  # subpixel steps
    # columns: the same in every row (no shear); the last pixel of a row is not fudged
    first, last = (0.5 * isx + itx) * scale, ((0.5 + W - 1) * isx + itx) * scale
    cols = np.empty(W, np.int64)
    if W > 1:
        j = np.arange(W - 1, dtype=np.float64)
        cols[:-1] = np.trunc(first + (last - first) * j / (W - 1) + 1e-8)
    cols[-1] = int(last)
    ys = np.arange(H, dtype=np.float64) + 0.5
    row_at = (ys * isy + ity) * scale
    rows = np.trunc(row_at + (1e-8 if W > 1 else 0.0)).astype(np.int64)
    rows_last = np.trunc(row_at).astype(np.int64)
    cols = w - 1 - np.clip(cols >> 8, 0, w - 1)
    rows, rows_last = (h - 1 - np.clip(r >> 8, 0, h - 1) for r in (rows, rows_last))
    out = np.take(packed[rows], cols, axis=1)
    out[:, -1] = packed[rows_last, cols[-1]]
    return out, x0, y0


def _rgba8(rgb: np.ndarray) -> np.ndarray:
    """0..1 RGB as the 8-bit RGBA matplotlib draws it (x 255, truncated: `to_rgba(bytes=True)`),
    so the drawing resamples it as it is instead of converting it first. 8-bit RGBA (made so
    already, as `montage._outline` makes it) is taken as it is."""
    if rgb.dtype == np.uint8 and rgb.shape[-1] == 4:
        return rgb
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb * 255
    out[..., 3] = 255
    return out


def colorbar(fig, panel: Panel, scale, label: str) -> None:
    """A vertical colour bar just right of `panel` that takes no room from it, drawn as
    `fig.colorbar` draws one (the colormap's bands, a black outline, ticks where its
    AutoLocator puts them, labelled by a ScalarFormatter on the right at size 7, the label
    beyond them) with figure artists: a colour bar's Axes and their tick machinery cost about
    a quarter of the montage."""
    from matplotlib.image import BboxImage
    from matplotlib.lines import TICKRIGHT, Line2D
    from matplotlib.text import Annotation
    from matplotlib.ticker import MaxNLocator, ScalarFormatter
    from matplotlib.transforms import (
        Bbox,
        BboxTransform,
        BboxTransformTo,
        ScaledTranslation,
        TransformedBbox,
    )

    rc = plt.rcParams
    b = panel.box
    where = TransformedBbox(
        Bbox.from_bounds(b.x0 + 1.015 * b.width, b.y0, 0.03 * b.width, b.height), fig.transFigure
    )
    frac = BboxTransformTo(where)
    lo, hi = float(scale.norm.vmin), float(scale.norm.vmax)
    bands = scale.cmap(np.arange(scale.cmap.N))[::-1, None, :3]  # top: the highest value
    image = BboxImage(where, interpolation="nearest", origin="upper")
    image.set_data(bands)
    fig.add_artist(image)
    outline = dict(lw=rc["axes.linewidth"], ec=rc["axes.edgecolor"], zorder=1)
    fig.add_artist(plt.Rectangle((0, 0), 1, 1, transform=frac, fill=False, clip_on=False,
                                 **outline))  # fmt: skip
    span = hi - lo
    # AutoLocator's bins: one per two label heights of the bar's length, at most 9
    nbins = int(np.clip(b.height * fig.get_size_inches()[1] * 72 // (2 * 7), 1, 9))
    ticks = [t for t in MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
             if lo - 1e-10 * span <= t <= hi + 1e-10 * span]  # fmt: skip
    value = BboxTransform(Bbox([[0, lo], [1, hi]]), where)  # (x fraction, value) to the figure
    size = rc["ytick.major.size"]
    fig.add_artist(Line2D([1] * len(ticks), ticks, transform=value, ls="none", marker=TICKRIGHT,
                          markersize=size, markeredgewidth=rc["ytick.major.width"],
                          color=rc["ytick.color"], clip_on=False, zorder=2))  # fmt: skip
    fmt = ScalarFormatter()
    fmt.create_dummy_axis()
    fmt.axis.set_view_interval(lo, hi)
    pad = ScaledTranslation((size + rc["ytick.major.pad"]) / 72, 0, fig.dpi_scale_trans)
    texts = [fig.text(1, t, s, transform=value + pad, ha="left", va="center_baseline",
                      fontsize=7) for t, s in zip(ticks, fmt.format_ticks(ticks))]  # fmt: skip
    if fmt.get_offset():
        up = ScaledTranslation(0, 3 / 72, fig.dpi_scale_trans)
        fig.text(1, 1, fmt.get_offset(), transform=frac + up, va="baseline", fontsize=7)

    seen: dict = {}

    def beside(renderer):  # the outline and the tick labels, as a y label on the right is placed
        key = (id(renderer), renderer.width, renderer.height, fig.dpi)  # once per drawing
        if key not in seen:
            seen.clear()
            seen[key] = Bbox.union([where] + [t.get_window_extent(renderer) for t in texts])
        return seen[key]

    fig.add_artist(Annotation(label, (1, 0.5), xycoords=(beside, frac),
                              xytext=(rc["axes.labelpad"], 0), textcoords="offset points",
                              rotation=90, rotation_mode="anchor",
                              ha="center", va="top", fontsize=7))  # fmt: skip
