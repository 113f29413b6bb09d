"""One tiling abstraction for training (random patches) and inference (tiles with halo).

A tile has a *core* box (the pixels it owns; cores partition the image exactly) and a *halo* box
(the core grown by `halo` on every side, clipped at the image border) that gives a network its
context. Tile cores are aligned to the store's chunks, so shard jobs that write only their cores
never write the same chunk. Boxes are over the spatial axes only ((y, x) or (z, y, x)); the
channel axis is always whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a plan is built: a job that only cuts boxes
    import pandas as pd  # (the restore noise fit) does without it (0.35 s, issue 15)

SPATIAL = ("z", "y", "x")


@dataclass(frozen=True)
class Box:
    """A half-open box over spatial axes: start (inclusive) to stop (exclusive)."""

    start: tuple[int, ...]
    stop: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def relative_to(self, outer: Box) -> Box:
        """This box in the coordinates of `outer` (which must contain it)."""
        return Box(
            tuple(a - o for a, o in zip(self.start, outer.start)),
            tuple(b - o for b, o in zip(self.stop, outer.start)),
        )

    def scaled(self, factor: Sequence[int]) -> Box:
        """The box on a grid finer by integer `factor` per axis (super-resolution outputs)."""
        return Box(
            tuple(a * f for a, f in zip(self.start, factor)),
            tuple(b * f for b, f in zip(self.stop, factor)),
        )


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        return (int(value),) * ndim
    value = tuple(int(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{name} has {len(value)} entries for {ndim} spatial axes")
    return value


def axis_names(ndim: int) -> tuple[str, ...]:
    if ndim not in (2, 3):
        raise ValueError(f"tiling works on 2 or 3 spatial axes, not {ndim}")
    return SPATIAL[-ndim:]


def aligned_tile_size(tile: Sequence[int], chunks: Sequence[int] | None) -> tuple[int, ...]:
    """Round each tile edge to a whole number of chunks (at least one chunk)."""
    if chunks is None:
        return tuple(tile)
    return tuple(max(c, round(t / c) * c) for t, c in zip(tile, chunks))


def plan_tiles(
    shape: Sequence[int],
    tile: int | Sequence[int] = 512,
    halo: int | Sequence[int] = 32,
    chunks: Sequence[int] | None = None,
    tiles_per_shard: int = 64,
) -> pd.DataFrame:
    """The tile plan of an image with spatial `shape`: one row per tile.

    Columns: `tile` (row-major index), `shard` (consecutive groups of `tiles_per_shard`), then for
    each spatial axis `a`: `a0`, `a1` (core box) and `ha0`, `ha1` (halo box, clipped to the
    image). Tile edges are multiples of `chunks` when given, so cores align to chunks. Axes of
    size smaller than the tile get a single tile along them.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    names = axis_names(ndim)
    if any(s <= 0 for s in shape):
        raise ValueError(f"cannot tile an empty image of shape {shape}")
    tile = _per_axis(tile, ndim, "tile")
    halo = _per_axis(halo, ndim, "halo")
    if chunks is not None:
        chunks = _per_axis(chunks, ndim, "chunks")
    if any(t <= 0 for t in tile) or any(h < 0 for h in halo):
        raise ValueError(f"tile must be positive and halo non-negative (tile={tile}, halo={halo})")
    if tiles_per_shard < 1:
        raise ValueError("tiles_per_shard must be at least 1")
    tile = aligned_tile_size(tile, chunks)
    counts = [math.ceil(s / t) for s, t in zip(shape, tile)]
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1)
    grid = grid.reshape(-1, ndim)
    cols: dict[str, np.ndarray] = {
        "tile": np.arange(len(grid), dtype=np.int64),
        "shard": np.arange(len(grid), dtype=np.int64) // tiles_per_shard,
    }
    for i, a in enumerate(names):
        start = grid[:, i] * tile[i]
        stop = np.minimum(start + tile[i], shape[i])
        cols[f"{a}0"], cols[f"{a}1"] = start, stop
        cols[f"h{a}0"] = np.maximum(start - halo[i], 0)
        cols[f"h{a}1"] = np.minimum(stop + halo[i], shape[i])
    import pandas as pd

    return pd.DataFrame(cols)


def spatial_ndim(plan: pd.DataFrame) -> int:
    return 3 if "z0" in plan.columns else 2


def iter_tiles(plan: pd.DataFrame, shard: int | None = None) -> Iterator[tuple[int, Box, Box]]:
    """Yield (tile id, core box, halo box) for every tile, or for one shard's tiles."""
    names = axis_names(spatial_ndim(plan))
    rows = plan if shard is None else plan[plan["shard"] == shard]
    for row in rows.itertuples(index=False):
        r = row._asdict()
        core = Box(tuple(r[f"{a}0"] for a in names), tuple(r[f"{a}1"] for a in names))
        halo = Box(tuple(r[f"h{a}0"] for a in names), tuple(r[f"h{a}1"] for a in names))
        yield int(r["tile"]), core, halo


def n_shards(plan: pd.DataFrame) -> int:
    return int(plan["shard"].max()) + 1 if len(plan) else 0


def sample_patch_boxes(
    shape: Sequence[int],
    patch: int | Sequence[int],
    n: int,
    rng: np.random.Generator,
) -> list[Box]:
    """`n` random boxes of size `patch` inside spatial `shape` (training patch sampling).

    A patch larger than the image along an axis is clipped to the image along that axis.
    """
    shape = tuple(int(s) for s in shape)
    patch = tuple(min(p, s) for p, s in zip(_per_axis(patch, len(shape), "patch"), shape))
    starts = np.stack([rng.integers(0, s - p + 1, size=n) for s, p in zip(shape, patch)], -1)
    return [
        Box(tuple(int(v) for v in s), tuple(int(v + p) for v, p in zip(s, patch))) for s in starts
    ]


def default_tile(ndim: int) -> tuple[int, ...]:
    """Tiles for reading a whole label image: 1024 x 1024 in 2D; 64 x 512 x 512 in 3D (about
    the same number of bytes per read)."""
    return (1024, 1024) if ndim == 2 else (64, 512, 512)


def chunks_of(array) -> tuple[int, ...] | None:
    """An array's regular chunk shape, or None (no chunks, or not a tuple of ints)."""
    chunks = getattr(array, "chunks", None)
    if chunks is None or not all(isinstance(c, int | np.integer) for c in chunks):
        return None
    return tuple(int(c) for c in chunks)


def tile_grid(labels, tile, chunks) -> tuple[pd.DataFrame, tuple[int, ...]]:
    """The tile plan over a label image (no halo, one shard; `tile` default `default_tile`,
    `chunks` default the array's) and the effective tile edge per axis."""
    shape, tile, chunks = _grid_args(labels, tile, chunks)
    plan = plan_tiles(shape, tile, halo=0, chunks=chunks, tiles_per_shard=1 << 30)
    names = axis_names(len(shape))
    edge = tuple(int(plan[f"{a}1"].iloc[0] - plan[f"{a}0"].iloc[0]) for a in names)
    return plan, edge


def grid_size(labels, tile, chunks) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The tile count and the tile edge per axis of `tile_grid(labels, tile, chunks)`, without
    making its plan (a table costs more than the arithmetic: issue 15); the same errors."""
    shape, tile, chunks = _grid_args(labels, tile, chunks)
    ndim = len(shape)
    axis_names(ndim)
    tile = _per_axis(tile, ndim, "tile")
    if chunks is not None:
        chunks = _per_axis(chunks, ndim, "chunks")
    if any(s <= 0 for s in shape) or any(t <= 0 for t in tile):
        tile_grid(labels, tile, chunks)  # raises the plan's error
    tile = aligned_tile_size(tile, chunks)
    return tuple(math.ceil(s / t) for s, t in zip(shape, tile)), tuple(
        min(t, s) for t, s in zip(tile, shape)
    )


def _grid_args(labels, tile, chunks) -> tuple[tuple[int, ...], object, object]:
    """`tile_grid`'s shape, and its tile and chunks with their defaults filled in."""
    shape = tuple(int(s) for s in labels.shape)
    tile = default_tile(len(shape)) if tile is None else tile
    return shape, tile, chunks_of(labels) if chunks is None else chunks


def read_box(array, box: Box, channel_axis: bool = True) -> np.ndarray:
    """Read a box from an array with layout (c, [z,] y, x) (or without c)."""
    index = ((slice(None),) if channel_axis else ()) + box.slices
    return np.asarray(array[index])


def plan_store(
    store,
    tile: int | Sequence[int] = 512,
    halo: int | Sequence[int] = 32,
    tiles_per_shard: int = 64,
) -> pd.DataFrame:
    """The tile plan of an NGFF image store's level 0, aligned to its chunks."""
    import zarr

    arr = zarr.open_group(str(store), mode="r")["0"]
    return plan_tiles(arr.shape[1:], tile, halo, arr.chunks[1:], tiles_per_shard)
