"""Shard jobs and their gather: how every tiled stage (restore, segment, ...) runs.

A shard job processes a batch of many tiles of one image: it reads each tile's halo box (padded
by reflection to one common shape so tiles stack into a batch), calls the stage's `process`
function on the batch, and writes only the tile cores into a shard store. The shard store is a
plain Zarr array of the output's full shape whose chunks are the tile cores, so a shard writes
whole chunks of its own tiles and nothing else. Reading the next batch and writing the previous
one overlap with processing the current one (background threads: `prefetch`).

The gather job then copies every tile core from its shard store into the stage's NGFF output,
builds the pyramid and writes metadata, atomically. Memory in both is bounded by batch and tile
size, never by image size.
"""

from __future__ import annotations

import concurrent.futures as cf
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from .io.ngff import compressor
from .tiling import Box, iter_tiles, spatial_ndim

# process(batch (B, C, *S) float32, origins [(global start of each padded tile)]) -> (B, C', *S*f)
Process = Callable[[np.ndarray, list[tuple[int, ...]]], np.ndarray]


def tile_shape(plan: pd.DataFrame) -> tuple[int, ...]:
    """The common padded shape of every tile's halo box in a plan."""
    names = ("z", "y", "x")[-spatial_ndim(plan) :]
    return tuple(int((plan[f"h{a}1"] - plan[f"h{a}0"]).max()) for a in names)


def read_padded(array, halo: Box, shape: Sequence[int], image_shape: Sequence[int]):
    """Read a halo box and reflect-pad it to `shape`; returns (block, padded origin).

    Padding goes on the side where the box was clipped by the image border, so the padded
    tile's origin is the global coordinate of its first (possibly mirrored) pixel.
    """
    block = np.asarray(array[(slice(None), *halo.slices)], dtype=np.float32)
    pads, origin = [(0, 0)], []
    for a, b, want, n in zip(halo.start, halo.stop, shape, image_shape):
        missing = want - (b - a)
        before = missing if a == 0 and b < n else 0  # clipped at the start: pad before
        pads.append((before, missing - before))
        origin.append(a - before)
    if any(p != (0, 0) for p in pads):
        mode = "reflect" if all(s > 1 for s in block.shape[1:]) else "edge"
        block = np.pad(block, pads, mode=mode)
    return block, tuple(origin)


def create_shard_store(path, shape: Sequence[int], dtype, plan: pd.DataFrame, factor: int = 1):
    """The full-shape, core-chunked Zarr array that one shard job fills in part."""
    names = ("z", "y", "x")[-spatial_ndim(plan) :]
    core = [int((plan[f"{a}1"] - plan[f"{a}0"]).max()) for a in names]
    chunks = (1, *[c * (factor if a in "yx" else 1) for c, a in zip(core, names)])
    return zarr.create_array(
        str(path),
        shape=tuple(shape),
        dtype=dtype,
        chunks=chunks,
        compressors=compressor(dtype),
        fill_value=0,
        overwrite=True,
        zarr_format=2,
    )


def run_shard(
    source,
    plan: pd.DataFrame,
    shard: int,
    process: Process,
    out,
    batch_size: int = 8,
    factor: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Process one shard's tiles in batches and write their cores into `out`.

    `source` is an array of layout (c, [z,] y, x) (zarr level 0); `out` is the shard store from
    `create_shard_store` (its spatial grid finer by `factor` in y and x for super-resolution).
    Returns the number of tiles processed.
    """
    image_shape = source.shape[1:]
    shape = tile_shape(plan)
    tiles = list(iter_tiles(plan, shard))
    batches = [tiles[i : i + batch_size] for i in range(0, len(tiles), batch_size)]
    scale = tuple(factor if a in "yx" else 1 for a in ("z", "y", "x")[-len(shape) :])

    def load(batch):
        reads = [read_padded(source, halo, shape, image_shape) for _, _, halo in batch]
        return np.stack([r[0] for r in reads]), [r[1] for r in reads]

    def save(batch, result, origins):
        for (_, core, _), res, origin in zip(batch, result, origins):
            padded = Box(origin, tuple(o + s for o, s in zip(origin, shape)))
            rel = core.relative_to(padded).scaled(scale)
            out[(slice(None), *core.scaled(scale).slices)] = res[(slice(None), *rel.slices)]
        if progress:
            progress(len(batch))

    prefetch(batches, load, process, save)
    return len(tiles)


def prefetch(items: Sequence, load: Callable, process: Callable, save: Callable) -> None:
    """save(item, process(*load(item)), ...) for each item, I/O overlapped with compute.

    One background thread reads item i + 1 while item i is processed, and another writes item
    i's result while item i + 1 is processed. At most one item is read ahead and one write is
    pending, so memory stays bounded by three items. Errors in a thread surface here.
    """
    if not items:
        return
    with cf.ThreadPoolExecutor(1) as reader, cf.ThreadPoolExecutor(1) as writer:
        pending, written = reader.submit(load, items[0]), None
        for i, item in enumerate(items):
            blocks, origins = pending.result()
            if i + 1 < len(items):
                pending = reader.submit(load, items[i + 1])
            result = process(blocks, origins)
            if written is not None:
                written.result()
            written = writer.submit(save, item, result, origins)
        written.result()


def gather(shard_stores: Sequence, plan: pd.DataFrame, dst, factor: int = 1) -> None:
    """Copy each tile core from its shard's store into `dst` (an array of the same shape)."""
    stores = {i: zarr.open_array(str(p), mode="r") for i, p in enumerate(shard_stores)}
    names = ("z", "y", "x")[-spatial_ndim(plan) :]
    scale = tuple(factor if a in "yx" else 1 for a in names)
    for row in plan.itertuples(index=False):
        r = row._asdict()
        core = Box(tuple(r[f"{a}0"] for a in names), tuple(r[f"{a}1"] for a in names))
        sl = (slice(None), *core.scaled(scale).slices)
        dst[sl] = stores[int(r["shard"])][sl]


def run_whole(plan: pd.DataFrame, out, shard: Callable, gather: Callable):
    """A whole image in one process: shard(i, store) for every shard of `plan`, then
    gather(stores). The shard stores are temporary, beside `out`, and removed afterwards (also
    on failure). Batch jobs and the CLI run a stage this way; returns what gather returns."""
    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.shards-") as tmp:
        stores = []
        for i in sorted(int(s) for s in plan["shard"].unique()):
            store = Path(tmp) / f"shard-{i}.zarr"
            shard(i, store)
            stores.append(store)
        return gather(stores)
