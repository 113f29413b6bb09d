"""OME-Zarr (NGFF 0.4) writing: streamed level 0, a streamed 2x pyramid, validated metadata;
and reading the metadata of NGFF 0.4 and 0.5 groups (`metadata` and the helpers below it).

We write NGFF 0.4 (Zarr v2 format), the version today's viewers (napari, Fiji, neuroglancer,
ome-zarr-py) read; `zarr_reader.open_zarr` also reads 0.5. Images are (c, [z,] y, x); chunks
hold one channel and about 1-4 MB; the pyramid halves y and x (z is kept) until the largest of y,
x is under 512. Every store carries provenance under the `microdiff` attribute.

Metadata is validated (`validate`, ome-zarr-models) where it comes from outside: ingest, whose
axes, scales and channel names come from the input files, and the plate. The stores the stages
derive from those (restored, segmentation, generated) take their metadata from `create_image`
and `labels.create_labels` alone; the tests validate each kind of them (restored and
segmentation stores in 2D and 3D, generated and bright-field ones in 2D), so a job
does not pay ome-zarr-models' import and its 10-40 ms per store again (issue 15).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.storage import MemoryStore, StorePath

from ..errors import InputError

# Every chunk written goes to disk, zeros included (zarr skips chunks equal to the fill value by
# default): a reader can then tell a lost chunk file from a dark region, and `zarr_reader`
# refuses images with missing chunks. The setting is per process and not stored with the array,
# so it is set where every writer of images imports from.
zarr.config.set({"array.write_empty_chunks": True})

NGFF_VERSION = "0.4"
MIN_PYRAMID = 512
BAND_PIXELS = 1 << 21  # pixels per streamed block (4 MB of uint16): bounds every band's memory
# Codecs from bench/io.py (4k x 4k, MB per CPU second, bit-shuffled Blosc). Integer images (raw,
# labels) compress well with zstd; level 1 keeps 97% of level 3's ratio (2.77 vs 2.85 on uint16)
# and writes 1.1-1.4x faster. Float images (restored, probabilities) barely compress whatever
# the codec (ratio 1.31-1.35), so lz4: about 2x faster writes and 1.5x faster reads than zstd.
COMPRESSOR = Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)
FLOAT_COMPRESSOR = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)


def compressor(dtype):
    """The Blosc codec for arrays of `dtype` (see above)."""
    return FLOAT_COMPRESSOR if np.dtype(dtype).kind == "f" else COMPRESSOR


COLORS = ["0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF"]


def _dtype_window(dtype) -> dict:
    dtype = np.dtype(dtype)
    top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
    lo = float(np.iinfo(dtype).min) if dtype.kind in "ui" else 0.0
    return {"min": lo, "max": top, "start": lo, "end": top}


def set_display_windows(group: zarr.Group) -> None:
    """Set each channel's display window to the 0.1-99.9 percentiles of the smallest level."""
    last = group[level_paths(group)[-1]]
    small = np.asarray(last[:])
    omero = dict(group.attrs["omero"])
    for c, ch in enumerate(omero["channels"]):
        lo, hi = np.percentile(small[c], [0.1, 99.9]) if small[c].size else (0.0, 1.0)
        ch["window"] = {**ch["window"], "start": float(lo), "end": float(max(hi, lo + 1e-6))}
    group.attrs["omero"] = omero


def choose_chunks(shape: Sequence[int], dtype, target_bytes: int = 1 << 20) -> tuple[int, ...]:
    """Chunks for (c, [z,] y, x): one channel, about `target_bytes`, power-of-two edges.

    3D chunks take up to 16 planes. y gets the smaller power of two and x the rest (uint16 2D:
    512 x 1024 = 1 MB), so a chunk is a short wide band that reads well from strip TIFFs.
    """
    itemsize = np.dtype(dtype).itemsize
    spatial = list(shape[1:])
    zc = min(spatial[0], 16) if len(spatial) == 3 else 1
    pixels = max(1, target_bytes // (itemsize * zc))
    cy = 2 ** int(math.floor(math.log2(math.sqrt(pixels))))
    cx = min(max(1, pixels // cy), spatial[-1])
    if cx * cy < pixels:  # x clipped by a narrow image: make the chunk taller instead
        cy = 2 ** math.ceil(math.log2(pixels / cx))
    yx = [min(cy, spatial[-2]), cx]
    return (1, zc, *yx) if len(spatial) == 3 else (1, *yx)


def axes_meta(axes: str, unit: str = "micrometer") -> list[dict]:
    out = []
    for a in axes:
        if a == "c":
            out.append({"name": "c", "type": "channel"})
        else:
            out.append({"name": a, "type": "space", "unit": unit})
    return out


def level_scales(axes: str, scale: dict[str, float], n_levels: int) -> list[list[float]]:
    """Per-level scale vectors: y and x double each level; c and z stay."""
    out = []
    for k in range(n_levels):
        vec = []
        for a in axes:
            base = 1.0 if a == "c" else float(scale.get(a, 1.0))
            vec.append(base * 2**k if a in "yx" else base)
        out.append(vec)
    return out


# -- reading: the one place that knows where NGFF keeps its metadata ---------------------------


def metadata(attrs) -> dict:
    """The NGFF metadata of a group's attributes: under "ome" (NGFF 0.5) or at the top level
    (0.4); multiscales, omero, labels, plate and well are read from it."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else dict(attrs)


def multiscale(group: zarr.Group) -> dict:
    """The first multiscale image of an NGFF image group."""
    return metadata(group.attrs)["multiscales"][0]


def level_paths(group: zarr.Group) -> list[str]:
    """The pyramid levels' array paths, full resolution first."""
    return [d["path"] for d in multiscale(group)["datasets"]]


def level0(group: zarr.Group) -> zarr.Array:
    """The full-resolution array of an NGFF image group."""
    return group[level_paths(group)[0]]


def axis_letters(group: zarr.Group) -> str:
    """The image's axes as a string of their names ("czyx", "cyx")."""
    return "".join(a["name"] for a in multiscale(group)["axes"])


def level0_scale(group: zarr.Group) -> dict[str, float]:
    """{axis name: scale} of level 0 of a multiscale image group."""
    ms = multiscale(group)
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    return {a["name"]: float(v) for a, v in zip(ms["axes"], scale)}


def axis_unit(group: zarr.Group, axis: str) -> str | None:
    """The unit of one axis (None when the metadata gives none)."""
    return next((a.get("unit") for a in multiscale(group)["axes"] if a["name"] == axis), None)


def channels(attrs) -> list[dict]:
    """The omero channel entries (label, color, window) of an image group's attributes."""
    return (metadata(attrs).get("omero") or {}).get("channels", [])


def channel_labels(attrs) -> list[str]:
    """The omero channel labels of an image group's attributes ("" where a channel has none)."""
    return [ch.get("label", "") for ch in channels(attrs)]


def pyramid_shapes(shape: Sequence[int]) -> list[tuple[int, ...]]:
    shapes = [tuple(shape)]
    while max(shapes[-1][-2:]) >= MIN_PYRAMID:
        s = shapes[-1]
        shapes.append((*s[:-2], math.ceil(s[-2] / 2), math.ceil(s[-1] / 2)))
    return shapes


def create_levels(group: zarr.Group, shape: Sequence[int], dtype, chunks: Sequence[int]) -> int:
    """Create the empty pyramid levels "0", "1", ... of `shape` in `group`; returns their count."""
    shapes = pyramid_shapes(shape)
    for k, s in enumerate(shapes):
        group.create_array(
            str(k),
            shape=s,
            dtype=dtype,
            chunks=tuple(min(c, n) for c, n in zip(chunks, s)),
            compressors=compressor(dtype),
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
    return len(shapes)


def multiscales(name: str, axes: str, scale: dict | None, n_levels: int, kind: str) -> list:
    """The NGFF `multiscales` attribute of a pyramid of `n_levels` made by `kind` downsampling."""
    scales = level_scales(axes, scale or {}, n_levels)
    datasets = [
        {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": sc}]}
        for k, sc in enumerate(scales)
    ]
    return [
        {
            "version": NGFF_VERSION,
            "name": name,
            "axes": axes_meta(axes),
            "datasets": datasets,
            "type": kind,
        }
    ]


def create_image(
    path,
    shape: Sequence[int],
    dtype,
    axes: str,
    scale: dict[str, float] | None = None,
    channel_names: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
    attrs: dict | None = None,
    name: str = "image",
) -> zarr.Group:
    """Create an empty NGFF image group with all pyramid levels and its metadata."""
    shape = tuple(int(s) for s in shape)
    chunks = tuple(chunks) if chunks else choose_chunks(shape, dtype)
    group = zarr.open_group(store_like(path), mode="w", zarr_format=2)
    n_levels = create_levels(group, shape, dtype, chunks)
    names = list(channel_names or [])
    names += [f"ch{i}" for i in range(len(names), shape[0])]
    group.attrs.update(
        {
            "multiscales": multiscales(name, axes, scale, n_levels, "mean"),
            "omero": {
                "version": NGFF_VERSION,
                "channels": [
                    {
                        "label": n,
                        "active": True,
                        "color": COLORS[i % len(COLORS)],
                        "window": _dtype_window(dtype),
                    }
                    for i, n in enumerate(names[: shape[0]])
                ],
            },
            **(attrs or {}),
        }
    )
    return group


def iter_bands(
    shape: Sequence[int], chunks: Sequence[int], max_pixels: int = BAND_PIXELS
) -> Iterator[tuple[int, tuple[slice, ...]]]:
    """(channel, spatial slices) for chunk-aligned blocks: one chunk high in y/z and whole rows
    in x, or, where whole rows would hold more than `max_pixels`, as many whole chunks in x as
    fit (at least one). Memory per block is bounded however wide the image is."""
    spatial = shape[1:]
    lead = spatial[:-1]  # z,y or y: banded by chunk; x whole or in whole-chunk pieces
    steps = chunks[1:-1]
    rows = int(np.prod([min(s, n) for s, n in zip(steps, lead)]))
    cx = int(chunks[-1])
    width = max(cx, max_pixels // max(rows, 1) // cx * cx)
    for c in range(shape[0]):
        ranges = [range(0, n, s) for n, s in zip(lead, steps)]
        for starts in np.ndindex(*[len(r) for r in ranges]):
            sl = tuple(
                slice(r[i], min(r[i] + s, n)) for r, i, s, n in zip(ranges, starts, steps, lead)
            )
            for x0 in range(0, spatial[-1], width):
                yield c, (*sl, slice(x0, min(x0 + width, spatial[-1])))


def downsample2(block: np.ndarray, method: str = "mean") -> np.ndarray:
    """Halve the last two axes: mean of 2x2 (images) or top-left pick (labels). The mean is
    (top-left + top-right) + (bottom-left + bottom-right) over 4, in float32 (integers
    rounded): numpy's mean over the 2 x 2 axes of a reshaped array gives the same values at a
    tenth of the speed (test)."""
    if method == "nearest":
        return block[..., ::2, ::2]
    y, x = block.shape[-2:]
    b = np.asarray(block, np.float32)
    if y % 2 or x % 2:
        b = np.pad(b, [(0, 0)] * (b.ndim - 2) + [(0, y % 2), (0, x % 2)], mode="edge")
    out = b[..., 0::2, 0::2] + b[..., 0::2, 1::2]
    out += b[..., 1::2, 0::2] + b[..., 1::2, 1::2]
    out *= np.float32(0.25)
    if np.issubdtype(block.dtype, np.integer):
        out = np.rint(out)
    return out.astype(block.dtype, copy=False)


def fill_pyramid(
    group: zarr.Group, method: str = "mean", progress: Callable | None = None, level0=None
) -> None:
    """Compute levels 1.. from level 0, band by band (memory bounded by one band). `level0`:
    level 0's data where the caller holds it (a small image): it is written as level 0, and the
    same bands are cut from the level before in memory, not read back from the store (issue 15);
    the same values (bands, not whole levels: a mean over another array shape may round
    differently)."""
    k, prev = 1, None if level0 is None else np.asarray(level0)
    if prev is not None:
        group["0"][...] = prev
    while str(k) in group:
        src, dst = group[str(k - 1)], group[str(k)]
        cur = None if prev is None else np.empty(dst.shape, dst.dtype)
        for c, sl in iter_bands(dst.shape, dst.chunks, BAND_PIXELS // 4):  # src: 4x the pixels
            src_sl = (c, *sl[:-2], *[slice(s.start * 2, s.stop * 2) for s in sl[-2:]])
            block = downsample2(np.asarray(src[src_sl] if prev is None else prev[src_sl]), method)
            dst[(c, *sl)] = block
            if cur is not None:
                cur[(c, *sl)] = block
            if progress:
                progress(0)
        k, prev = k + 1, cur


def copy_level0(
    source,
    group: zarr.Group,
    dtype=None,
    check_finite: bool = True,
    progress: Callable | None = None,
) -> None:
    """Stream `source` (an ImageSource) into level 0 band by band, refusing NaN/inf pixels.

    Each band is read once for all channels (`iter_bands` of channel 0)."""
    dst = group["0"]
    n_c = dst.shape[0]
    for _, sl in iter_bands((1, *dst.shape[1:]), dst.chunks, BAND_PIXELS // n_c):
        bands = source.read(sl)
        for c, block in enumerate(bands):
            if check_finite and block.dtype.kind == "f" and not np.isfinite(block).all():
                bad = int((~np.isfinite(block)).sum())
                raise InputError(source.path, f"{bad} NaN or infinite pixels (channel {c}, {sl})")
            dst[(c, *sl)] = block.astype(dtype or block.dtype, copy=False)
            if progress:
                progress(int(np.prod(block.shape)))


def validate(path) -> None:
    """Validate the NGFF metadata of an image store with ome-zarr-models; raise on failure."""
    from ome_zarr_models.v04.image import Image

    try:
        Image.from_zarr(zarr.open_group(store_like(path), mode="r"))
    except Exception as err:  # the library raises pydantic and value errors alike
        raise ValueError(f"{path}: NGFF metadata does not validate: {err}") from err


def store_like(target):
    """What zarr opens for `target`: a path (as a string), or a store (`assembled`) as it is."""
    return str(target) if isinstance(target, (str, os.PathLike)) else target


def child(target, name: str):
    """`target`'s sub-store `name` (a path or a store, as `assembled` yields)."""
    if isinstance(target, (str, os.PathLike)):
        return Path(target) / name
    return StorePath(target, name)


@contextmanager
def assembled(path, small: bool):
    """Where to write the new NGFF store `path`: a large one in place; a small one (`small`) in
    memory, its files written under `path` in one pass when the block ends without error. A
    local store's metadata round trips (a file system call or several per array and per
    attribute update) cost more than a small image's pixels (issue 15); the files are the same.
    Yields what `create_image`, `validate` and `child` take."""
    if not small:
        yield Path(path)
        return
    files: dict = {}
    yield MemoryStore(files)
    root, made = Path(path), set()
    for key, buf in files.items():
        dest = root / key
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        dest.write_bytes(buf.to_bytes())
