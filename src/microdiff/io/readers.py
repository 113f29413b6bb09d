"""Lazy readers for TIFF, OME-TIFF, plain Zarr arrays, OME-Zarr (NGFF 0.4 and 0.5), PNG and JPEG.

Every reader presents one view, `ImageSource`: layout (c, [z,] y, x), read region by region, so
an image is never held whole in memory. Axis layouts come from the file's metadata (OME-XML,
ImageJ, NGFF axes, zarr dimension names) or, where the file does not say, from an `axes` string
the caller gives (the sample sheet's `axes` column).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
import zarr

from ..errors import AxesUnknown, InputError

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)
# Axis letters we accept on input, beyond c/z/y/x: singleton time/sequence axes are dropped and
# RGB samples ('s') are channels.
_SINGLETON_OK = set("tqi")


def resolve_channel(names: Sequence[str], channel) -> int:
    """The index of a channel given by index or by name among `names`."""
    if isinstance(channel, int | np.integer):
        if not 0 <= channel < len(names):
            raise ValueError(f"channel {channel} out of range for channels {list(names)}")
        return int(channel)
    if channel not in names:
        raise ValueError(f"no channel named {channel!r}; the image has {list(names)}")
    return list(names).index(channel)


@dataclass
class ImageSource:
    """A lazily read image with canonical layout (c, [z,] y, x)."""

    path: str
    array: object  # anything sliceable with numpy semantics (zarr array, memmap, ndarray)
    src_axes: str  # the array's own axes, lower case
    scale: dict[str, float] = field(default_factory=dict)  # physical size per spatial axis (um)
    channel_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        order = [self.src_axes.index(a) for a in self.axes if a in self.src_axes]
        self._order = order
        self._keep = [self.src_axes.index(a) for a in self.src_axes if a in self.axes]

    @property
    def axes(self) -> str:
        return "c" + "".join(a for a in "zyx" if a in self.src_axes)

    @property
    def shape(self) -> tuple[int, ...]:
        full = self.array.shape
        shape = [full[self.src_axes.index(a)] if a in self.src_axes else 1 for a in self.axes]
        return tuple(int(s) for s in shape)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def read(self, spatial: tuple[slice, ...] | None = None) -> np.ndarray:
        """Read all channels of a spatial region, returned as (c, [z,] y, x)."""
        spatial = spatial or tuple(slice(None) for _ in self.spatial_shape)
        want = dict(zip(self.axes[1:], spatial))
        index = []
        for a in self.src_axes:
            if a in want:
                index.append(want[a])
            elif a == "c":
                index.append(slice(None))
            else:  # singleton axis we drop
                index.append(0)
        try:
            block = np.asarray(self.array[tuple(index)])
        except Exception as err:  # corrupt or truncated data surfaces on read
            raise InputError(
                self.path, f"cannot read pixel data ({type(err).__name__}: {err})"
            ) from err
        kept = [a for a in self.src_axes if a in want or a == "c"]
        block = np.transpose(block, [kept.index(a) for a in self.axes if a in kept])
        if "c" not in self.src_axes:
            block = block[None]
        return block


class _ContiguousTiff:
    """Uncompressed contiguous TIFF pixels, read region by region.

    tifffile writes uncompressed images as one strip, which its zarr view reads whole. A memory
    map made per read and dropped afterwards reads only the rows asked for and keeps resident
    memory bounded by the region, not the file.
    """

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype):
        self.path, self.offset = path, offset
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)

    def __getitem__(self, index):
        mm = np.memmap(self.path, self.dtype, "r", self.offset, self.shape)
        try:
            return np.array(mm[index])
        finally:
            del mm


def _check_axes(path: str, axes: str, shape: tuple[int, ...]) -> str:
    """Normalize an axes string and refuse layouts we cannot map to (c, [z,] y, x)."""
    axes = axes.lower().replace("s", "c")
    if len(axes) != len(shape):
        raise InputError(path, f"axes '{axes}' do not match the array's {len(shape)} dimensions")
    if len(set(axes)) != len(axes):
        raise InputError(path, f"unsupported axis layout '{axes}' (an axis appears twice)")
    for a, n in zip(axes, shape):
        if a in "czyx":
            continue
        if a in _SINGLETON_OK and n == 1:
            continue
        raise InputError(
            path,
            f"unsupported axis layout '{axes}' with shape {shape}: axis '{a}' of size {n} "
            "(only c, z, y, x; time series must be split into samples)",
        )
    if "y" not in axes or "x" not in axes:
        raise InputError(path, f"unsupported axis layout '{axes}': y and x axes are required")
    return axes


def _check_array(path: str, shape, dtype) -> None:
    if any(int(s) == 0 for s in shape):
        raise InputError(path, f"empty image (shape {tuple(shape)})")
    if np.dtype(dtype) not in [np.dtype(d) for d in SUPPORTED_DTYPES]:
        raise InputError(path, f"unsupported pixel type {np.dtype(dtype)} (uint8, uint16, float32)")


def _ome_scale(tf: tifffile.TiffFile) -> tuple[dict[str, float], list[str]]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(tf.ome_metadata)
    ns = {"o": root.tag.split("}")[0].strip("{")}
    pixels = root.find(".//o:Image/o:Pixels", ns)
    if pixels is None:
        return {}, []
    scale = {}
    for a in "zyx":
        v = pixels.get(f"PhysicalSize{a.upper()}")
        if v is not None:
            scale[a] = float(v)
    names = [ch.get("Name") or f"ch{i}" for i, ch in enumerate(pixels.findall("o:Channel", ns))]
    return scale, names


def _imagej_scale(tf: tifffile.TiffFile) -> dict[str, float]:
    page = tf.pages.first
    scale = {}
    try:
        xres = page.tags["XResolution"].value
        yres = page.tags["YResolution"].value
        if xres[0] and xres[1] and xres[0] != xres[1]:
            scale["x"] = xres[1] / xres[0]
            scale["y"] = yres[1] / yres[0]
        spacing = (tf.imagej_metadata or {}).get("spacing")
        if spacing:
            scale["z"] = float(spacing)
    except (KeyError, ZeroDivisionError, TypeError):
        return {}
    return scale


def open_tiff(path: str, axes: str | None = None) -> ImageSource:
    try:
        tf = tifffile.TiffFile(path)
        series = tf.series[0]
        shape, dtype, file_axes = series.shape, series.dtype, series.axes
        if series.dataoffset is not None:  # uncompressed and contiguous: read via short maps
            array = _ContiguousTiff(path, series.dataoffset, shape, dtype)
        else:
            array = zarr.open_array(series.aszarr(), mode="r")
    except InputError:
        raise
    except Exception as err:
        raise InputError(path, f"not a readable TIFF ({type(err).__name__}: {err})") from err
    if axes is None:
        if any(n > 1 for a, n in zip(file_axes, shape) if a in "QI"):
            raise AxesUnknown(path, f"ambiguous axis layout '{file_axes}' with shape {shape}")
        axes = file_axes
    axes = _check_axes(path, axes, shape)
    _check_array(path, shape, dtype)
    scale, names = ({}, [])
    if tf.is_ome:
        scale, names = _ome_scale(tf)
    elif tf.is_imagej:
        scale = _imagej_scale(tf)
    return ImageSource(str(path), array, axes, scale, names)


# PNG/JPEG through Pillow. Both formats decode whole (no region access); they are small in practice.
_PIL_EXTENSIONS = (".png", ".jpg", ".jpeg")
_PIL_MODES = {  # Pillow mode -> (mode to convert to, dtype, channel names)
    "1": ("L", np.uint8, None),
    "L": ("L", np.uint8, None),
    "LA": ("L", np.uint8, None),
    "I;16": ("I;16", np.uint16, None),
    "I;16B": ("I;16", np.uint16, None),
    "I;16L": ("I;16", np.uint16, None),
    "P": ("RGB", np.uint8, ["R", "G", "B"]),
    "PA": ("RGB", np.uint8, ["R", "G", "B"]),
    "RGB": ("RGB", np.uint8, ["R", "G", "B"]),
    "RGBA": ("RGB", np.uint8, ["R", "G", "B"]),
    "CMYK": ("RGB", np.uint8, ["R", "G", "B"]),
    "YCbCr": ("RGB", np.uint8, ["R", "G", "B"]),
}


class _PillowPixels:
    """The pixels of a PNG/JPEG, decoded on first read (not at open, so listing is cheap)."""

    def __init__(self, path: str, mode: str, shape: tuple[int, ...], dtype):
        self.path, self.mode = path, mode
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self._data = None

    def __getitem__(self, index):
        if self._data is None:
            from PIL import Image

            with Image.open(self.path) as im:
                im = im if im.mode == self.mode else im.convert(self.mode)
                data = np.asarray(im, dtype=self.dtype)
            self._data = np.moveaxis(data, -1, 0) if data.ndim == 3 else data
        return self._data[index]


def _png_16bit_colour(path: str) -> bool:
    """True for a 16-bit RGB(A) PNG, which Pillow would silently reduce to 8 bits."""
    with open(path, "rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6)


def open_pillow(path: str, axes: str | None = None) -> ImageSource:
    """Open a PNG or JPEG: grey as one channel, colour as three (R, G, B); alpha is dropped."""
    from PIL import Image, UnidentifiedImageError

    if _png_16bit_colour(path):
        raise InputError(
            path, "16-bit colour PNG is not supported (Pillow reads it as 8 bits): save as TIFF"
        )
    try:
        with Image.open(path) as im:
            mode, (width, height), fmt = im.mode, im.size, im.format
            frames = getattr(im, "n_frames", 1)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(path, f"not a readable PNG/JPEG ({type(err).__name__}: {err})") from err
    if frames > 1:
        raise InputError(path, f"animated {fmt} with {frames} frames is not supported")
    if mode not in _PIL_MODES:
        raise InputError(path, f"unsupported {fmt} pixel mode {mode!r}")
    target, dtype, names = _PIL_MODES[mode]
    shape = (3, height, width) if names else (height, width)
    src_axes = "cyx" if names else "yx"
    if axes is not None and sorted(axes.lower().replace("s", "c")) != sorted(src_axes):
        raise InputError(path, f"axes '{axes}' do not fit a {fmt} image (layout {src_axes})")
    _check_array(path, shape, dtype)
    array = _PillowPixels(str(path), target, shape, dtype)
    return ImageSource(str(path), array, src_axes, {}, list(names or []))


def open_image(
    path: str | Path, axes: str | None = None, scene: int | str | None = None
) -> ImageSource:
    """Open a TIFF, OME-TIFF, Zarr array, OME-Zarr image, PNG, JPEG or vendor file lazily.

    Raises `InputError` naming the file for a missing file, an unreadable or truncated file, an
    unsupported axis layout or pixel type, or an empty image. ND2, CZI and LIF go through bioio
    (`microdiff[formats]`); `scene` picks one of their scenes (index or id, default the first);
    the other formats hold one image.
    """
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(path, "file not found")
    name = p.name.lower()
    from . import vendor

    if vendor.is_vendor(name):
        return vendor.open_bioio(path, axes, scene)
    if scene not in (None, "", 0, "0"):
        raise InputError(path, f"scene {scene!r} given, but this format holds one image")
    if p.is_dir() or name.endswith((".zarr", ".zarr/")):
        from .zarr_reader import open_zarr

        return open_zarr(path, axes)
    if name.endswith((".tif", ".tiff")):
        return open_tiff(path, axes)
    if name.endswith(_PIL_EXTENSIONS):
        return open_pillow(path, axes)
    raise InputError(
        path,
        "unknown image format (expected .tif, .tiff, .ome.tif, .zarr, .ome.zarr, .png, .jpg, "
        ".nd2, .czi, .lif)",
    )


def describe(src: ImageSource) -> str:
    return json.dumps(
        {"path": src.path, "axes": src.axes, "shape": src.shape, "dtype": str(src.dtype)}
    )
