"""The report's cheap rendering paths: `save` (one draw, cropped as matplotlib's tight save
would), the montage's outlines and its crop windows."""

import numpy as np
from PIL import Image

from microdiff import report
from microdiff.report.common import plt


def drawn(fig) -> np.ndarray:
    """The figure's Agg canvas as RGBA pixels (a copy); the figure is closed."""
    fig.canvas.draw()
    out = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return out


def add_picture(fig, extents, rgba, ours: bool) -> None:
    """`rgba` drawn in the figure-fraction box `extents` by the montage's `Picture` (`ours`),
    or by the matplotlib BboxImage it stands for."""
    from matplotlib.image import BboxImage
    from matplotlib.transforms import Bbox, TransformedBbox

    from microdiff.report.panel import Picture

    where = TransformedBbox(Bbox.from_extents(*extents), fig.transFigure)
    if ours:
        fig.add_artist(Picture(where, rgba))
    else:
        image = BboxImage(where, interpolation="nearest", origin="upper")
        image.set_data(rgba)
        fig.add_artist(image)


def _figure(outside: bool = False):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.imshow(np.random.default_rng(0).random((30, 40)), cmap="magma")
    ax.set_title("a title")
    if outside:  # placed below the figure's edge: only a larger canvas shows it
        ax.text(0.5, -0.6, "note below", transform=ax.transAxes, ha="center", va="top")
    return fig


def test_save_crops_like_tight_savefig(tmp_path):
    for outside in (False, True):
        _figure(outside).savefig(tmp_path / "ref.png", dpi=100, bbox_inches="tight")
        report.save(_figure(outside), tmp_path / "new.png")
        with Image.open(tmp_path / "ref.png") as ref, Image.open(tmp_path / "new.png") as new:
            assert abs(ref.size[0] - new.size[0]) <= 2 and abs(ref.size[1] - new.size[1]) <= 2
            assert new.size[1] > (300 if outside else 0)  # the note below is in the picture
        assert not list(tmp_path.glob(".new.png.tmp-*"))


def test_inner_boundaries_are_skimage_inner_boundaries():
    from skimage.segmentation import find_boundaries

    from microdiff.label_maps import inner_boundaries

    rng = np.random.default_rng(2)
    for _ in range(100):
        lab = rng.integers(0, 4, (rng.integers(1, 12), rng.integers(1, 12)))
        np.testing.assert_array_equal(inner_boundaries(lab), find_boundaries(lab, mode="inner"))
    for _ in range(30):  # 3D: face neighbours, as skimage's connectivity 1
        lab = rng.integers(0, 4, tuple(rng.integers(1, 8, 3)))
        np.testing.assert_array_equal(inner_boundaries(lab), find_boundaries(lab, mode="inner"))


def test_windows_read_together_equal_windows_read_alone():
    from microdiff.report.montage import _windows

    image = np.arange(60 * 80).reshape(60, 80)
    near = [{"box": (0, 20, 0, 20), "plane": None}, {"box": (10, 30, 15, 35), "plane": None}]
    far = [{"box": (0, 4, 0, 4), "plane": None}, {"box": (50, 60, 70, 80), "plane": None}]
    for picks in (near, far):
        for p, w in zip(picks, _windows(image, picks, labels="x")):
            y0, y1, x0, x1 = p["box"]
            np.testing.assert_array_equal(w, image[y0:y1, x0:x1])
    stack = np.arange(3 * 60 * 80).reshape(3, 60, 80)  # 3D: each crop from its own plane
    planes = [dict(near[0], plane=2), dict(near[1], plane=0), dict(near[0], plane=0)]
    for p, w in zip(planes, _windows(stack, planes, labels="x")):
        y0, y1, x0, x1 = p["box"]
        np.testing.assert_array_equal(w, stack[p["plane"], y0:y1, x0:x1])


def test_panel_draws_what_imshow_in_an_axis_off_axes_draws():
    """The montage's panels skip the Axes: the image lands on the same pixels as imshow's
    (nearest) in an aspect-equal Axes with its axis off, in the same grid cell."""
    from microdiff.report.panel import Panel

    rgb = np.random.default_rng(1).random((37, 53, 3))

    def draw(panel: bool) -> np.ndarray:
        fig = plt.figure(figsize=(5.1, 3.3), dpi=100)
        cell = fig.add_gridspec(2, 3, height_ratios=[2, 1], wspace=0.06)[0, 1:]
        if panel:
            Panel(fig, cell, rgb)
        else:
            ax = fig.add_subplot(cell)
            ax.imshow(rgb, interpolation="nearest")
            ax.set_axis_off()
        return drawn(fig)

    np.testing.assert_array_equal(draw(True), draw(False))


def test_colorbar_draws_what_fig_colorbar_draws():
    """The montage's colour bar is drawn without Axes: the same picture as `fig.colorbar` in
    an Axes at the same place (bands within one grey level: pcolormesh against an image)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from microdiff.report.panel import Panel, colorbar

    def draw(ours: bool) -> np.ndarray:
        fig = plt.figure(figsize=(4, 3), dpi=100)
        panel = Panel(fig, fig.add_gridspec(1, 2)[0, 0], np.zeros((30, 40, 3)))
        scale = ScalarMappable(Normalize(0.013, 0.27), colormaps["magma"])
        if ours:
            colorbar(fig, panel, scale, "std of nuclear probability")
        else:
            b = panel.box
            cax = fig.add_axes((b.x0 + 1.015 * b.width, b.y0, 0.03 * b.width, b.height))
            cb = fig.colorbar(scale, cax=cax)
            cb.ax.tick_params(labelsize=7)
            cb.set_label("std of nuclear probability", fontsize=7)
        return drawn(fig).astype(int)

    assert np.abs(draw(True) - draw(False)).max() <= 2


def test_write_png_decodes_to_its_pixels(tmp_path):
    """Lossless: the libdeflate stream decodes to the pixels, with the dpi written."""
    from microdiff.report.common import write_png

    rng = np.random.default_rng(3)
    for channels in (3, 4):
        pixels = rng.integers(0, 256, (23, 41, channels), dtype=np.uint8)
        pixels[5:9] = 7  # flat rows as well as noise
        write_png(tmp_path / "p.png", pixels, dpi=100)
        with Image.open(tmp_path / "p.png") as im:
            assert im.mode == ("RGB" if channels == 3 else "RGBA")
            np.testing.assert_array_equal(np.asarray(im), pixels)
            assert round(im.info["dpi"][0]) == 100


def test_picture_draws_what_a_nearest_bbox_image_draws():
    """The montage's `Picture` repeats pixels with numpy: the same canvas as matplotlib's
    BboxImage (nearest, origin upper) for enlarged, reduced, 1:1, one-pixel-wide and
    partly-off-canvas boxes at fractional positions."""

    rng = np.random.default_rng(2)
    boxes = [(0.05, 0.1, 0.61, 0.83), (0.313, 0.2771, 0.5, 0.4), (0.7, 0.05, 0.7137, 0.9),
             (0.1, 0.1, 0.1 + 40 / 510, 0.1 + 37 / 330), (0.8, 0.7, 1.2, 1.1)]  # fmt: skip
    for shape in [(37, 53), (256, 256), (1, 9), (260, 348)]:
        rgba = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
        rgba[..., 3] = 255

        def draw(ours: bool, rgba=rgba) -> np.ndarray:
            fig = plt.figure(figsize=(5.1, 3.3), dpi=100)
            for b in boxes:
                add_picture(fig, b, rgba, ours)
            return drawn(fig)

        np.testing.assert_array_equal(draw(True), draw(False))


def test_outline_bytes_are_the_float_rgb_converted():
    """`_outline` and `_over` make the 8-bit RGBA that `_rgba8` makes of the float RGB
    images they made before (grey repeated, boundaries or values coloured), for float32 and
    float64 grey."""
    from microdiff.label_maps import inner_boundaries
    from microdiff.report.montage import CELLS, NUCLEI, _outline, _over
    from microdiff.report.panel import _rgba8

    rng = np.random.default_rng(3)
    nuclei = np.zeros((40, 50), np.int32)
    nuclei[5:15, 5:20], nuclei[20:30, 25:45] = 1, 2
    cells = np.zeros_like(nuclei)
    cells[2:18, 2:24], cells[17:35, 20:48] = 1, 2
    for dtype in (np.float32, np.float64):
        gray = rng.random((40, 50)).astype(dtype)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        rgb[inner_boundaries(cells)] = CELLS
        rgb[inner_boundaries(nuclei)] = NUCLEI
        np.testing.assert_array_equal(_outline(gray, nuclei, cells), _rgba8(rgb))
        # the uncertainty over 60% grey, as the float RGB it was made as
        values = np.where(nuclei > 0, rng.random(nuclei.shape), np.nan)
        scale = _over(gray, values, 0.1, 0.9)[1]
        rgb = np.repeat((gray * 0.6)[..., None], 3, axis=2)
        rgb[nuclei > 0] = scale.to_rgba(values[nuclei > 0])[:, :3]
        np.testing.assert_array_equal(_over(gray, values, 0.1, 0.9)[0], _rgba8(rgb))


def test_clipped_panel_annotations_leave_the_tight_box_as_it_was():
    """Annotations clipped to a panel are left out of the figure's tight box: it is the same
    box as with them measured (a ring and a rectangle reaching past the panel's edge)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from microdiff.report.panel import Panel

    fig = plt.figure(figsize=(5.1, 3.3), dpi=100)
    panel = Panel(fig, fig.add_gridspec(1, 2)[0, 1], np.zeros((30, 40, 3)))
    panel.ring(39, 0, 30, ec="white")
    panel.rectangle((30, 25), 20, 20, ec="white")
    panel.line([-5, 50], [29, 29], color="white")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    left_out = [a for a in fig.artists if not a.get_in_layout()]
    assert len(left_out) == 3
    box = fig.get_tightbbox(renderer)
    for a in left_out:
        a.set_in_layout(True)
    np.testing.assert_array_equal(fig.get_tightbbox(renderer).get_points(), box.get_points())
    plt.close(fig)


def test_grow_is_binary_dilation():
    """The uncertainty mask's margin: `_grow` is scipy's 4-connected `binary_dilation`."""
    from scipy.ndimage import binary_dilation

    from microdiff.report.montage import _grow

    rng = np.random.default_rng(4)
    for shape in [(64, 80), (7, 3), (1, 5)]:
        for p in (0.002, 0.05, 0.4):
            mask = rng.random(shape) < p
            for steps in (1, 3):
                np.testing.assert_array_equal(
                    _grow(mask, steps), binary_dilation(mask, iterations=steps)
                )


def test_picture_on_a_vector_canvas_is_matplotlibs_image(tmp_path):
    """Outside Agg (here SVG, which scales images itself) a Picture is drawn as the BboxImage
    it stands for: the same file."""

    rgba = np.random.default_rng(5).integers(0, 256, (12, 17, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    svgs = []
    for ours in (True, False):
        fig = plt.figure(figsize=(3, 2))
        add_picture(fig, (0.1, 0.2, 0.7, 0.9), rgba, ours)
        with plt.rc_context({"svg.hashsalt": "x"}):  # ids the same in both files
            fig.savefig(tmp_path / f"{ours}.svg", metadata={"Date": None})
        plt.close(fig)
        svgs.append((tmp_path / f"{ours}.svg").read_text())
    assert svgs[0] == svgs[1]


def test_examples_without_axes_beside_the_names_draw_as_bare_axes_did(tmp_path, monkeypatch):
    """examples_figure turns the axes of the crops off (no axis to lay out or draw, issue 15):
    the same PNG as when every axes was kept with its ticks and spines hidden."""
    from matplotlib.axes import Axes

    rng = np.random.default_rng(0)
    crops = {str(k): rng.uniform(-1, 1, (4, 2, 16, 16)).astype(np.float32) for k in range(3)}
    crops["2"] = crops["2"][:2]  # a class with fewer examples: empty axes at its row's end
    counts = {k: 10 + i for i, k in enumerate(crops)}
    report.save(report.examples_figure(crops, counts, 0.5), tmp_path / "new.png")

    def bare(ax):  # the old way: the axes kept, its ticks and spines hidden
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)

    monkeypatch.setattr(Axes, "set_axis_off", bare)
    report.save(report.examples_figure(crops, counts, 0.5), tmp_path / "old.png")
    new, old = (np.asarray(Image.open(tmp_path / f)) for f in ("new.png", "old.png"))
    assert new.shape == old.shape and np.array_equal(new, old)
