"""What every report figure shares: writing a PNG atomically and reading NGFF stores cheaply.

Whole views come from a pyramid level (the coarsest at least `max_px` on its longest side, then a
stride), so their cost is about `max_px` squared pixels whatever the image size; `read_window`
reads a native-resolution (level 0) window. 3D images show one plane (the middle one unless told).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_output  # noqa: E402
from ..io import ngff, segmentation  # noqa: E402


def save(fig, path, dpi: int = 100) -> None:
    """Write a figure as PNG atomically and close it, cropped to what it draws (as
    `bbox_inches="tight"` would, padded by `savefig.pad_inches`).

    The figure is drawn once: the crop box is found after that draw and cut from its pixels
    (matplotlib's "tight" save draws twice, a layout pass and the picture). Only a box that
    reaches past the figure's edges (an artist placed outside it) is saved the slow way, by a
    second draw on a larger canvas. The PNG is written by `write_png` (no filter, deflate level 1):
    half the time of Pillow's level 1, whose per-row filter search costs as much as the
    compression, and a smaller file for a montage."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig.get_tightbbox(canvas.get_renderer()).padded(plt.rcParams["savefig.pad_inches"])
    width, height = canvas.get_width_height()
    x0, x1 = math.floor(box.x0 * dpi), math.ceil(box.x1 * dpi)
    y0, y1 = height - math.ceil(box.y1 * dpi), height - math.floor(box.y0 * dpi)
    with atomic_output(path) as tmp:
        if 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height:
            rgba = np.asarray(canvas.buffer_rgba())[y0:y1, x0:x1]
            opaque = bool((rgba[..., 3] == 255).all())
            write_png(tmp, rgba[..., :3] if opaque else rgba, dpi)
        else:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=box,
                        pil_kwargs={"compress_level": 1})  # fmt: skip
    plt.close(fig)


def write_png(path, pixels: np.ndarray, dpi: float | None = None, level: int = 1) -> None:
    """An 8-bit RGB or RGBA (Y, X, 3 or 4) image as a PNG file: filter type 0 (none) on every
    row, one deflate stream (zlib format) at `level`, and a pHYs chunk for `dpi` (as Pillow
    writes it). Lossless like any PNG: it decodes to `pixels`. Pillow chooses a filter per row
    by trying all five, which costs as much as compressing at level 1 itself; on figures (flat
    areas, photographs at 1:1) no filter makes files about as small (issue 15). The stream is
    libdeflate's (imagecodecs): about half the CPU of zlib's at the same level, and slightly
    smaller."""
    import struct
    import zlib

    from imagecodecs import deflate_encode

    h, w, c = pixels.shape
    if pixels.dtype != np.uint8 or c not in (3, 4):
        raise ValueError(f"write_png: 8-bit RGB or RGBA expected, got {pixels.dtype} {c}")
    rows = np.empty((h, w * c + 1), np.uint8)
    rows[:, 0] = 0  # filter type of each row
    packed = rows[:, 1:].reshape(h, w, c)
    for k in range(c):  # a channel at a time: 5x faster than one copy of (h, w, c) pixels
        packed[..., k] = pixels[..., k]  # cut from a wider RGBA buffer (inner loops of c bytes)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(data, zlib.crc32(kind))
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    head = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 6, 0, 0, 0)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", head)]
    if dpi:
        ppm = int(dpi / 0.0254 + 0.5)  # pixels per meter, as Pillow rounds it
        parts.append(chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
    parts += [chunk(b"IDAT", deflate_encode(rows, level=level)), chunk(b"IEND", b"")]
    with open(path, "wb") as f:
        f.writelines(parts)


def open_store(path):
    """An NGFF store opened for reading; an open group is returned as it is, so a figure that
    reads one store many times opens it once."""
    import zarr

    return path if isinstance(path, zarr.Group) else zarr.open_group(str(path), mode="r")


def _group(path, labels: str | None = None):
    group = open_store(path)
    return group[f"labels/{labels}"] if labels is not None else group


def _lead(array, channel: int | None, plane: int | None) -> list[int]:
    """Indices that reduce a ([C,] [Z,] Y, X) array to (Y, X): the channel, then the plane."""
    lead = [] if channel is None else [channel]
    while len(array.shape) - len(lead) > 2:
        n = array.shape[len(lead)]
        lead.append(n // 2 if plane is None else min(plane, n - 1))
    return lead


SMALL = 4 * 2**20  # pixels of a level-0 plane that `read_plane` reads whole


def _small_level(group, max_px: int, level0=None):
    """The pyramid level `read_small` reads (its path and array) and its stride: the coarsest
    at least `max_px` on its longest side, else level 0. `level0`: that array, where the caller
    has it open."""
    levels = ngff.level_paths(group)
    pick, array = levels[0], level0 if level0 is not None else group[levels[0]]
    for lv in levels[1:]:
        level = group[lv]
        if max(level.shape[-2:]) >= max_px:
            pick, array = lv, level
    y, x = array.shape[-2:]
    return pick, array, max(1, math.ceil(max(y, x) / max_px))


def read_small(path, max_px: int = 512, channel: int | None = 0, labels: str | None = None):
    """One channel (or a label image: `labels='nuclei'`) of an NGFF store, about `max_px`
    pixels on its longest side: the coarsest pyramid level that is at least that large,
    strided down to it."""
    group = _group(path, labels)
    channel = None if labels is not None else channel
    _, array, step = _small_level(group, max_px)
    lead = _lead(array, channel, None)
    data = np.asarray(array[(*lead, slice(None, None, step), slice(None, None, step))])
    return data if labels is not None else data.astype(np.float32)


def read_small_channels(path, max_px: int = 512) -> np.ndarray:
    """Every channel of an NGFF image as `read_small` reads each one, in one read: (C, y, x)
    float32, `out[c]` equal to `read_small(path, max_px, channel=c)` (3D: the middle plane)."""
    _, array, step = _small_level(_group(path), max_px)
    lead = _lead(array, 0, None)[1:]  # every channel, then the plane
    sl = slice(None, None, step)
    return np.asarray(array[(slice(None), *lead, sl, sl)]).astype(np.float32)


def read_plane(path, channel: int | None = 0, labels: str | None = None, max_px=None):
    """For a figure that shows a 2D image whole and in native-resolution windows: the level-0
    plane of one channel (or label image) read once, when it has at most `SMALL` pixels, else
    the level-0 array. Returns (view, source): `source` goes to `read_window` (the plane is a
    (Y, X) ndarray); `view` (with `max_px`) is `read_small(path, max_px, ...)`, cut from the
    plane when read_small would read level 0 (one read of the image, not two or more: the
    chunks of a small image are decompressed once, issue 15)."""
    group = _group(path, labels)
    array = ngff.level0(group)
    lead = [] if labels is not None else [channel]
    y, x = array.shape[-2:]

    def small():
        return read_small(path, max_px, channel, labels)

    if len(array.shape) != 2 + len(lead) or y * x > SMALL:  # 3D (a plane per crop) or large
        return (None if max_px is None else small()), array
    plane = np.asarray(array[(*lead, slice(None), slice(None))])
    if max_px is None:
        return None, plane
    pick, _, step = _small_level(group, max_px, array)
    if pick != ngff.level_paths(group)[0]:
        return small(), plane
    view = plane[::step, ::step]
    return (view if labels is not None else view.astype(np.float32)), plane


def read_window(path, box, channel: int | None = 0, labels: str | None = None, plane=None):
    """A native-resolution (level 0) window `box = (y0, y1, x0, x1)` of one channel (or a label
    image) of an NGFF store; 3D images: plane `plane` (default the middle one). `path` may be
    the level-0 array itself (`level0_array`), for a figure that reads many windows of it."""
    import zarr

    array = path if isinstance(path, (zarr.Array, np.ndarray)) else level0_array(path, labels)
    if isinstance(array, np.ndarray) and array.ndim == 2:  # a plane (`read_plane`)
        lead = []
    else:
        lead = _lead(array, None if labels is not None else channel, plane)
    y0, y1, x0, x1 = box
    data = np.asarray(array[(*lead, slice(y0, y1), slice(x0, x1))])
    return data if labels is not None else data.astype(np.float32)


def level0_array(path, labels: str | None = None):
    """The level-0 (native resolution) array of an NGFF store, or of one of its label images."""
    return ngff.level0(_group(path, labels))


def full_shape(path) -> tuple[int, ...]:
    """The spatial shape ([Z,] Y, X) of an NGFF image at level 0."""
    group = _group(path)
    return tuple(ngff.level0(group).shape[1:])


def pixel_size(path) -> float | None:
    """Micrometers per pixel in x at level 0 (None when the store says nothing useful)."""
    group = _group(path)
    size = ngff.level0_scale(group)["x"]
    if ngff.axis_unit(group, "x") not in (None, "micrometer") or not size > 0:
        return None
    return size


def channel_index(path, suffix: str) -> int | None:
    """Index of the first channel whose omero label ends with `suffix` (None if none)."""
    labels = ngff.channel_labels(_group(path).attrs)
    return next((i for i, label in enumerate(labels) if str(label).endswith(suffix)), None)


def label_names(path) -> list[str]:
    return segmentation.label_names(_group(path))


def stretch(img: np.ndarray, lo=None, hi=None) -> np.ndarray:
    """Intensities to 0..1 between `lo` and `hi` (default: the image's 1st and 99.8th
    percentiles)."""
    lo = np.percentile(img, 1) if lo is None else lo
    hi = np.percentile(img, 99.8) if hi is None else hi
    return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
