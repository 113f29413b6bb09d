"""The gather half of a tiled stage: read the shard stores back and write the stage's output.

Every gather reads its shard stores through one `ShardReader`: each pixel comes from the shard
that owns the tile core holding it. An image stage copies the tile cores into an NGFF image
(`write_image`: the posterior mean, and its standard deviation under `uncertainty/` when the
shards hold one); the segment stage reads windows across tile borders to stitch its labels.
Memory is bounded by tile (or window) size and the reader's few kept tile blocks, never by image
size (the segment gather holds level 0 in memory up to a fixed size, `segment.stage.HELD_BYTES`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import zarr

from .atomic import atomic_output
from .io import ngff
from .kept import Kept
from .shards import open_store
from .tiling import Box, axis_names, iter_tiles, spatial_ndim

UNCERTAINTY = "uncertainty"
KEEP_BYTES = 256 << 20  # decoded tile blocks a ShardReader keeps (a window meets 3 x 3 tiles)


class ShardReader:
    """Read any box of a stage's output from its shard stores (each tile core from its shard).

    `stores[i]` is shard i's store; boxes are on the output grid, finer than the plan's by
    `factor` in y and x (super-resolution). `attrs`: what the first shard job recorded.
    """

    def __init__(self, stores: Sequence, plan: pd.DataFrame, factor: int = 1):
        self.stores = [open_store(s) for s in stores]
        scale = tuple(factor if a in "yx" else 1 for a in axis_names(spatial_ndim(plan)))
        cores = [core.scaled(scale) for _, core, _ in iter_tiles(plan)]
        self.tiles = [(core, int(sh)) for core, sh in zip(cores, plan["shard"])]
        nd = len(scale)
        self.starts = np.array([c.start for c in cores], np.int64).reshape(-1, nd)
        self.stops = np.array([c.stop for c in cores], np.int64).reshape(-1, nd)
        self.attrs = dict(self.stores[0].attrs) if self.stores else {}
        self._kept = Kept(KEEP_BYTES)  # (tile, channels) -> decoded block

    def tile(self, i: int) -> tuple[Box, np.ndarray]:
        """Tile i's core box and all its channels, from its shard."""
        core, sh = self.tiles[i]
        return core, self.stores[sh][(slice(None), *core.slices)]

    def read(self, channels, box: Box) -> np.ndarray:
        """Channels (a slice or a list) of `box`, (C', *box.shape) float32."""
        if isinstance(channels, slice):
            n = len(range(self.stores[0].shape[0])[channels])
        else:
            n = len(channels)
        out = np.zeros((n, *box.shape), np.float32)
        hit = np.all((self.starts < box.stop) & (self.stops > box.start), axis=1)
        for i in np.flatnonzero(hit):  # only the tiles the box meets (not a loop over all tiles)
            core, _ = self.tiles[i]
            lo = tuple(max(a, b) for a, b in zip(core.start, box.start))
            hi = tuple(min(a, b) for a, b in zip(core.stop, box.stop))
            if any(a >= b for a, b in zip(lo, hi)):
                continue
            part = Box(lo, hi)
            block = self._block(int(i), channels)
            out[(slice(None), *part.relative_to(box).slices)] = block[
                (slice(None), *part.relative_to(core).slices)
            ]
        return out

    def _block(self, i: int, channels) -> np.ndarray:
        """Channels of tile i's whole core (its chunks are decoded whole anyway), the latest
        `KEEP_BYTES` of them kept: windows across tile borders read each tile several times."""
        key = (i, channels.indices(1 << 62) if isinstance(channels, slice) else tuple(channels))
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        core, sh = self.tiles[i]
        arr = self.stores[sh]
        if isinstance(channels, slice):
            block = arr[(channels, *core.slices)]
        else:  # one read of the channels' span: a chunk holds several channels
            lo = min(channels)
            span = arr[(slice(lo, max(channels) + 1), *core.slices)]
            block = span[np.asarray(channels) - lo]
        self._kept.put(key, block)
        return block


def copy_cores(reader: ShardReader, dst) -> None:
    """Copy each tile core from its shard's store into `dst` (an array of the output's shape)."""
    for i in range(len(reader.tiles)):
        core, block = reader.tile(i)
        dst[(slice(None), *core.slices)] = block


def accel_of(reader: ShardReader) -> dict | None:
    """How the shard jobs ran the network (device, bf16, ...; `diffusion.accel.describe`)."""
    return reader.attrs.get("accel")


class _Split:
    """A write target that sends the first `c` channels to `a` and the rest to `b`."""

    def __init__(self, a, b, c: int):
        self.a, self.b, self.c = a, b, c

    def __setitem__(self, sl, value):
        self.a[sl] = value[: self.c]
        if self.b is not None:
            self.b[sl] = value[self.c :]


def write_image(out, reader: ShardReader, meta: ImageMeta, prov: dict, name: str) -> None:
    """The shards' image as NGFF `out` (atomic), float32 of `meta`'s shape holding
    the posterior mean; shards with twice its channels hold the standard deviations after the
    means, written to `out/uncertainty/`."""
    shape, axes, scale, names = meta
    c = shape[0]
    full = (reader.stores[0].shape[0], *shape[1:])
    small = math.prod(full) <= ngff.BAND_PIXELS  # level 0 in memory, not read back (#15)
    with atomic_output(out) as tmp, ngff.assembled(tmp, small) as target:
        group = ngff.create_image(
            target, shape, np.float32, axes, scale, names, attrs={"microdiff": prov}, name=name
        )
        unc = None
        if reader.stores[0].shape[0] > c:
            unc = ngff.create_image(
                ngff.child(target, UNCERTAINTY), shape, np.float32, axes, scale,
                [f"{n} posterior std" for n in names], attrs={"microdiff": prov},
                name="posterior std",
            )  # fmt: skip
        if small:
            data = np.zeros(full, np.float32)
            copy_cores(reader, data)
            parts = [data[:c]] + ([data[c:]] if unc is not None else [])
        else:
            copy_cores(reader, _Split(group["0"], None if unc is None else unc["0"], c))
            parts = [None, None]
        for g, part in zip([group] + ([unc] if unc is not None else []), parts):
            ngff.fill_pyramid(g, level0=part)
            ngff.set_display_windows(g)


class ImageMeta(NamedTuple):
    shape: tuple[int, ...]  # level 0, (C, [Z,] Y, X)
    axes: str
    scale: dict[str, float]
    names: list[str]  # channel names

    def finer(self, factor: int) -> ImageMeta:
        """The same image on a grid finer by `factor` in y and x (super-resolution)."""
        *lead, y, x = self.shape
        scale = {a: v / factor if a in "yx" else v for a, v in self.scale.items()}
        return ImageMeta((*lead, y * factor, x * factor), self.axes, scale, self.names)


def image_meta(image) -> ImageMeta:
    """Level 0's shape, the axes, scale and channel names of an NGFF image."""
    g = zarr.open_group(str(image), mode="r")
    names = ngff.channel_labels(g.attrs)
    return ImageMeta(tuple(ngff.level0(g).shape), ngff.axis_letters(g), ngff.level0_scale(g), names)
