"""Shard jobs and whole-image runs: how every tiled stage (restore, superres, segment) runs.

A stage supplies a `process` function (a batch of tiles in, the same tiles' output out) and its
shard store's channels; `write_shard` is the shard job. It processes a batch of many tiles of
one image at a time: it reads each tile's halo box (padded by reflection to one common shape so
tiles stack into a batch), calls `process` on the batch, and writes only the tile cores into a
shard store. The shard store is a plain Zarr array of the output's full shape whose chunks are
the tile cores (of the channels a gather reads together), so a shard writes whole chunks of its
own tiles and nothing else. Reading the next batch and writing the previous one overlap with
processing the current one (background threads: `prefetch`).

The gather job (`microdiff.gather`) then reads the shard stores back into the stage's output.
`run_whole` runs every shard job and the gather of one image in one process (batch jobs, the
CLI). Memory is bounded by batch and tile size, never by image size.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm

from .atomic import atomic_output
from .tiling import Box, axis_names, iter_tiles, plan_store, spatial_ndim

# process(batch (B, C, *S) float32, origins [(global start of each padded tile)]) -> (B, C', *S*f)
Process = Callable[[np.ndarray, list[tuple[int, ...]]], np.ndarray]

# Inside `run_whole`: the shard stores it hands out, by path, held in memory (`HeldStore`) where
# one is at most MEMORY_BYTES; the gather in the same process opens them there (`open_store`).
# A whole small image's stores were compressed, written, read back and decoded in one process
# (issue 15: about 0.07 CPU s for the 22 channels of a 520 x 696 segment store).
_IN_MEMORY: contextvars.ContextVar[dict | None] = contextvars.ContextVar("in_memory", default=None)
MEMORY_BYTES = 1 << 26


def tile_shape(plan: pd.DataFrame) -> tuple[int, ...]:
    """The common padded shape of every tile's halo box in a plan."""
    names = axis_names(spatial_ndim(plan))
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


class HeldStore:
    """A shard store that `run_whole` holds in memory: a zero-filled array read and written as
    the Zarr one is (a read is a copy), with its `attrs`."""

    def __init__(self, shape: Sequence[int], dtype):
        self.data = np.zeros(tuple(shape), dtype)
        self.attrs: dict = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __getitem__(self, key) -> np.ndarray:
        return np.array(self.data[key])

    def __setitem__(self, key, value) -> None:
        self.data[key] = value


def create_shard_store(path, shape: Sequence[int], dtype, plan: pd.DataFrame, factor: int = 1,
                       group: int | None = None):  # fmt: skip
    """The full-shape, core-chunked Zarr array that one shard job fills in part. A chunk holds
    one tile core of `group` channels (None: all of them): the channels a gather reads
    together, decoded from one chunk instead of one chunk per channel (zarr's per-chunk work
    cost a 4096 x 4096 segment gather about as much again as the decoding, issue 15).

    Chunks are stored uncompressed: a shard store is temporary (the workflow removes it after
    its gather) and read once, and its float maps compress only 2.4x at about 0.9 GB/s each
    way (Blosc lz4, bit-shuffled), about 1.7 CPU s to write and as much to read for the 22
    channels of a 4096 x 4096 segment image. It takes 4 bytes per pixel and channel of disk
    instead (1.5 GB for that image) until the gather is done."""
    names = axis_names(spatial_ndim(plan))
    core = [int((plan[f"{a}1"] - plan[f"{a}0"]).max()) for a in names]
    chunks = (group or shape[0], *[c * (factor if a in "yx" else 1) for c, a in zip(core, names)])
    return zarr.create_array(
        str(path),
        shape=tuple(shape),
        dtype=dtype,
        chunks=chunks,
        compressors=None,
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
    scale = tuple(factor if a in "yx" else 1 for a in axis_names(len(shape)))

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


def write_shard(
    out,
    source,
    plan: pd.DataFrame,
    shard: int,
    process: Process,
    channels: int,
    batch_size: int,
    factor: int = 1,
    attrs: dict | None = None,
    desc: str | None = None,
    group: int | None = None,
) -> int:
    """A shard job: one shard's tiles through `process` into the new shard store `out`.

    The store holds `channels` channels (chunked `group` at a time: `create_shard_store`) on the
    source's grid (finer by `factor` in y and x) and `attrs` (how the job ran, for the gather's
    provenance); it is written atomically, so a killed job leaves no complete-looking shard.
    `desc` labels a progress bar (None: no bar). Returns the number of tiles processed.
    """
    *lead, y, x = source.shape[1:]
    shape = (channels, *lead, y * factor, x * factor)
    bar = tqdm(total=int((plan["shard"] == shard).sum()), disable=desc is None, file=sys.stderr,
               desc=desc)  # fmt: skip
    kept = _IN_MEMORY.get()
    if kept is not None and math.prod(shape) * 4 <= MEMORY_BYTES:  # run_whole's, small
        store = HeldStore(shape, np.float32)
        if attrs:
            store.attrs.update(attrs)
        n = run_shard(source, plan, shard, process, store, batch_size, factor, bar.update)
        kept[str(out)] = store
        bar.close()
        return n
    with atomic_output(out) as tmp:
        store = create_shard_store(tmp, shape, np.float32, plan, factor, group)
        if attrs:
            store.attrs.update(attrs)
        n = run_shard(source, plan, shard, process, store, batch_size, factor, bar.update)
    bar.close()
    return n


def with_halo(plan: pd.DataFrame, shape: Sequence[int], halo: int) -> pd.DataFrame:
    """The plan with halo boxes regrown to `halo` pixels (y, x; z keeps the plan's halo)."""
    plan = plan.copy()
    for a, n in zip(axis_names(spatial_ndim(plan)), shape):
        if a in "yx":
            plan[f"h{a}0"] = np.maximum(plan[f"{a}0"] - halo, 0)
            plan[f"h{a}1"] = np.minimum(plan[f"{a}1"] + halo, n)
    return plan


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


def run_whole(plan: pd.DataFrame, out, shard: Callable, gather: Callable):
    """A whole image in one process: shard(i, store) for every shard of `plan`, then
    gather(stores). The shard stores are temporary, beside `out`, and removed afterwards (also
    on failure); each at most MEMORY_BYTES is held in memory instead (`write_shard`,
    `open_store`). Batch jobs and the CLI run a stage this way; returns what gather returns."""
    out = Path(out)
    token = _IN_MEMORY.set({})
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.shards-") as tmp:
            stores = []
            for i in sorted(int(s) for s in plan["shard"].unique()):
                store = Path(tmp) / f"shard-{i}.zarr"
                shard(i, store)
                stores.append(store)
            return gather(stores)
    finally:
        _IN_MEMORY.reset(token)


def open_store(path):
    """A shard store for reading: the one `run_whole` holds in memory for `path`, or the one on
    disk."""
    kept = _IN_MEMORY.get()
    if kept is not None and str(path) in kept:
        return kept[str(path)]
    return zarr.open_array(str(path), mode="r")


def run_image(shard: Callable, gather: Callable, src, norm_path, model_dir, out, params: dict,
              tile: int, plan: pd.DataFrame | None = None, **kw):  # fmt: skip
    """A model stage's whole image in one process (restore, super-resolution: batch jobs, the
    CLI): `shard(src, plan, i, model_dir, norm_path, params, store, **kw)` for every shard of
    `plan` (None: a plan of `tile`-pixel tiles with the inference halo), then
    `gather(src, plan, stores, model_dir, params, out)`; returns what gather returns."""
    if plan is None:
        plan = plan_store(src, tile, int(params["inference"]["halo"]))
    return run_whole(
        plan,
        out,
        lambda i, store: shard(src, plan, i, model_dir, norm_path, params, store, **kw),
        lambda stores: gather(src, plan, stores, model_dir, params, out),
    )
