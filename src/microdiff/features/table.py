"""One row per object of a label image, computed tile-wise with memory bounded by tile and object
size.

Two passes over one sample:

1. `object_bboxes` reads the label image tile by tile (tile cores partition the image), finds
   every object's box in each tile core and takes the union per id. An object that crosses tile
   borders gets one box, so it is counted once.
2. `object_table` groups objects by the tile holding their box start, reads the union of the
   group's boxes (grown by a margin) once, and measures each object's shape from its own box and
   the intensities, texture and uncertainty of all the group's objects at once. Memory is
   bounded by tile size plus the largest object, never by the image.

Columns and units: the `features` package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..tiling import Box, axis_names, chunks_of, grid_size, iter_tiles, read_box, tile_grid
from .measure import INTENSITY_STATS, TEXTURE_PROPS, block_stats, measure_object, object_pixels
from .shape import block_shapes, object_index


def _boxes_in(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, starts, stops) of every label in one block, in block coordinates."""
    top = int(block.max()) if block.size else 0
    if top == 0:
        empty = np.zeros((0, block.ndim), np.int64)
        return np.zeros(0, np.int64), empty, empty
    if top <= 4 * block.size:
        ids = None
        slices = ndi.find_objects(block)
    else:  # huge ids: relabel 1..n first so find_objects does not allocate `top` entries
        ids, inverse = np.unique(block, return_inverse=True)
        inverse = inverse.reshape(block.shape)
        if ids[0] != 0:
            ids, inverse = np.concatenate([[0], ids]), inverse + 1
        slices, ids = ndi.find_objects(inverse), ids[1:]
    found = [(i, s) for i, s in enumerate(slices) if s is not None]
    index = np.array([i for i, _ in found], np.int64)
    out_ids = index + 1 if ids is None else np.asarray(ids, np.int64)[index]
    starts = np.array([[s.start for s in sl] for _, sl in found], np.int64)
    stops = np.array([[s.stop for s in sl] for _, sl in found], np.int64)
    return out_ids, starts, stops


def object_bboxes(labels, tile=None, chunks=None) -> pd.DataFrame:
    """Every object's bounding box, read tile by tile: columns `id`, `{a}0`, `{a}1` per axis.

    Boxes are half-open in pixel coordinates. Per-tile boxes of one id are merged (union), so an
    object crossing tile borders appears once. Sorted by id.
    """
    ids, starts, stops = _bboxes(labels, tile, chunks)
    names = axis_names(labels.ndim)
    cols = ["id"] + [f"{a}0" for a in names] + [f"{a}1" for a in names]
    if not len(ids):
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in cols})
    return pd.DataFrame(np.column_stack([ids, starts, stops]), columns=cols)


def _bboxes(labels, tile=None, chunks=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`object_bboxes` as arrays (ids, starts, stops), int64, sorted by id."""
    counts, _ = grid_size(labels, tile, chunks)
    if math.prod(counts) == 1:  # one tile: one box per id, found in id order; nothing to merge
        whole_box = Box((0,) * labels.ndim, tuple(int(n) for n in labels.shape))
        return _boxes_in(read_box(labels, whole_box, channel_axis=False))
    plan, _ = tile_grid(labels, tile, chunks)
    parts = []
    for _, core, _ in iter_tiles(plan):
        ids, starts, stops = _boxes_in(read_box(labels, core, channel_axis=False))
        if len(ids):
            offset = np.array(core.start, np.int64)
            parts.append((ids, starts + offset, stops + offset))
    if not parts:
        empty = np.zeros((0, labels.ndim), np.int64)
        return np.zeros(0, np.int64), empty, empty
    ids, starts, stops = (np.concatenate(p).astype(np.int64) for p in zip(*parts))
    # one box per id: the union of its per-tile boxes
    order = np.argsort(ids, kind="stable")
    ids, starts, stops = ids[order], starts[order], stops[order]
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[first], np.minimum.reduceat(starts, first), np.maximum.reduceat(stops, first)


def _columns(ndim: int, channel_names: Sequence[str]) -> list[str]:
    names = axis_names(ndim)
    size = "area" if ndim == 2 else "volume"
    unit = "um2" if ndim == 2 else "um3"
    cols = ["sample", "kind", "id"]
    cols += [f"centroid_{a}" for a in names]
    cols += [f"bbox_{a}0" for a in names] + [f"bbox_{a}1" for a in names]
    cols += ["touches_border", f"{size}_px", "perimeter_px", "eccentricity", "solidity"]
    cols += ["axis_major_px", "axis_minor_px", "diameter_px", f"{size}_{unit}"]
    cols += [f"centroid_{a}_um" for a in names]
    cols += ["perimeter_um", "axis_major_um", "axis_minor_um", "diameter_um", "neighbors"]
    for ch in channel_names:
        cols += [f"intensity_{s}_{ch}" for s in INTENSITY_STATS]
    for ch in channel_names:
        cols += [f"texture_{p.lower()}_{ch}" for p in TEXTURE_PROPS]
    return cols + ["uncertainty_mean", "uncertainty_max", "uncertainty_object"]


def _spacing(pixel_size, ndim: int) -> tuple[float, ...] | None:
    if pixel_size is None:
        return None
    if isinstance(pixel_size, int | float | np.number):
        return (float(pixel_size),) * ndim
    ps = tuple(float(p) for p in pixel_size)
    if len(ps) != ndim:
        raise ValueError(f"pixel_size has {len(ps)} entries for {ndim} spatial axes")
    return ps


def _object_uncertainty(table) -> pd.Series | None:
    """id -> uncertainty from a mapping, a Series indexed by id, or a frame (id, uncertainty)."""
    if table is None:
        return None
    if isinstance(table, pd.DataFrame):
        return table.set_index("id")["uncertainty"].astype(np.float64)
    if isinstance(table, pd.Series):
        return table.astype(np.float64)
    return pd.Series(dict(table), dtype=np.float64)


def _group_box(starts: np.ndarray, stops: np.ndarray, margin: int, shape) -> Box:
    lo = [max(int(v) - margin, 0) for v in starts.min(axis=0)]
    hi = [min(int(v) + margin, n) for v, n in zip(stops.max(axis=0), shape)]
    return Box(tuple(lo), tuple(hi))


def whole(array) -> np.ndarray:
    """All of an array (a zarr view, a lazily corrected image) in memory."""
    return np.asarray(array[(slice(None),) * array.ndim])


def single_tile(labels, tile) -> bool:
    """Whether the tile plan of `object_table` over `labels` is one tile."""
    return math.prod(grid_size(labels, tile, chunks_of(labels))[0]) == 1


def _read_image(image, box: Box, has_channels: bool) -> np.ndarray:
    data = read_box(image, box, channel_axis=has_channels)
    return data if has_channels else data[None]


def object_table(
    labels,
    image=None,
    sample: str = "",
    channel_names: Sequence[str] | None = None,
    pixel_size: float | Sequence[float] | None = None,
    uncertainty=None,
    object_uncertainty=None,
    tile: int | Sequence[int] | None = None,
    chunks: Sequence[int] | None = None,
    neighbor_distance: float = 2.0,
    texture_levels: int = 32,
    kind: str = "nucleus",
) -> pd.DataFrame:
    """One row per object of `labels` ((Z,) Y, X instance labels), sorted by `id`.

    `image` is (C, (Z,) Y, X) (a missing channel axis means one channel); `pixel_size` is one
    number or one per spatial axis (micrometres); `uncertainty` is a per-pixel image over the
    spatial axes; `object_uncertainty` maps id -> uncertainty. `tile` (default
    `tiling.default_tile`) bounds each read; tiles align to `chunks` (default: the label array's
    own chunks). See the `features` package docstring for the columns and their units.
    """
    ndim = labels.ndim
    names = axis_names(ndim)
    shape = tuple(labels.shape)
    has_channels = image is not None and image.ndim == ndim + 1
    n_ch = 0 if image is None else (image.shape[0] if has_channels else 1)
    if image is not None and tuple(image.shape[-ndim:]) != shape:
        raise ValueError(f"image shape {image.shape} does not match labels shape {shape}")
    if uncertainty is not None and tuple(uncertainty.shape) != shape:
        raise ValueError(f"uncertainty shape {uncertainty.shape} does not match labels {shape}")
    channel_names = [f"c{i}" for i in range(n_ch)] if channel_names is None else channel_names
    channel_names = [str(c) for c in channel_names]
    if len(channel_names) != n_ch:
        raise ValueError(f"{len(channel_names)} channel names for {n_ch} channels")
    spacing = _spacing(pixel_size, ndim)
    obj_unc = _object_uncertainty(object_uncertainty)
    columns = _columns(ndim, channel_names)

    chunks = chunks_of(labels) if chunks is None else chunks
    counts, edge = grid_size(labels, tile, chunks)
    if math.prod(counts) == 1:  # one tile holds the image: read each array once, not per pass
        labels, uncertainty = (None if a is None else whole(a) for a in (labels, uncertainty))
        image = None if image is None else whole(image)
    all_ids, starts, stops = _bboxes(labels, tile, chunks)
    if not len(all_ids):
        return _typed(pd.DataFrame(columns=columns), ndim)
    keys = [starts[:, k] // e for k, e in enumerate(edge)]
    keys = np.ravel_multi_index(keys, [math.ceil(n / e) for n, e in zip(shape, edge)])
    margin = max(math.ceil(neighbor_distance), 1)
    # objects grouped by the tile of their box start, in tile order (each group in id order)
    order = np.argsort(keys, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(keys[order])) + 1)
    parts = []  # per tile group: columns of numbers (a dict, or a frame), not a dict per object
    for at in groups:
        ids, start, stop = all_ids[at], starts[at], stops[at]
        box = _group_box(start, stop, margin, shape)
        lab = read_box(labels, box, channel_axis=False)
        img = None if image is None else _read_image(image, box, has_channels)
        unc = None if uncertainty is None else read_box(uncertainty, box, channel_axis=False)
        obj = object_index(lab, ids)
        pixels = object_pixels(obj)  # for the stats and the shapes
        stats = block_stats(lab, ids, img, unc, texture_levels, channel_names, obj, pixels)
        if ndim == 2 and (spacing is None or spacing[0] == spacing[1]):
            cols = _block_columns(lab, obj, ids, start, stop, box, shape, spacing,
                                  neighbor_distance, pixels)  # fmt: skip
            parts.append(cols | stats)
        else:
            group = pd.DataFrame(
                {"id": ids}
                | {f"{a}0": start[:, k] for k, a in enumerate(names)}
                | {f"{a}1": stop[:, k] for k, a in enumerate(names)}
            )
            cols = _object_columns(lab, group, box, shape, spacing, neighbor_distance)
            parts.append(cols.assign(**stats))
    if all(isinstance(p, dict) for p in parts):
        data = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    else:
        df = pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
        data = {c: df[c].to_numpy() for c in df.columns}
    # the table built once, in its column order and sorted by id: a frame changed a column at
    # a time costs more than the numbers in it (issue 15)
    size = "area" if ndim == 2 else "volume"
    data[f"{size}_px"] = data.pop("n")
    if spacing is not None:
        data[f"{size}_{'um2' if ndim == 2 else 'um3'}"] = data[f"{size}_px"] * float(
            np.prod(spacing)
        )
        for a, p in zip(names, spacing):
            data[f"centroid_{a}_um"] = data[f"centroid_{a}"] * p
    n = len(data["id"])
    if obj_unc is not None:
        data["uncertainty_object"] = pd.Series(data["id"]).map(obj_unc).to_numpy()
    order = np.argsort(data["id"], kind="stable")  # ids are unique
    out = {c: data[c][order] if c in data else np.full(n, np.nan) for c in columns}
    if all(_TYPES.get(c, np.float64) == out[c].dtype for c in columns if c not in _TEXT):
        # every column already of its type (the usual case): `_typed`'s casts are no-ops,
        # only the two text columns to make, as `_typed` makes them
        for c, text in (("sample", sample), ("kind", kind)):
            out[c] = pd.Series(np.full(n, text, object)).astype(str)
        return pd.DataFrame(out)
    out["sample"], out["kind"] = np.full(n, sample, object), np.full(n, kind, object)
    return _typed(pd.DataFrame(out), ndim)


_TEXT = ("sample", "kind")
_TYPES = {"id": np.int64, "neighbors": np.int64, "area_px": np.int64, "volume_px": np.int64,
          "touches_border": np.bool_}  # fmt: skip
_TYPES |= {f"bbox_{a}{e}": np.int64 for a in "zyx" for e in "01"}


def _block_columns(lab, obj, ids, start, stop, box: Box, shape, spacing, distance,
                   pixels=None) -> dict:  # fmt: skip
    """Box, shape and neighbour columns of a group's 2D objects (square pixels), all at once:
    `ids` and their box `start`s and `stop`s ((n, 2) arrays)."""
    names = axis_names(lab.ndim)
    sh = block_shapes(lab, obj, ids, distance, box.start, pixels)
    n = sh.pop("n")
    cols = {
        "id": ids,
        "n": n,
        **{f"centroid_{a}": sh["centroid"][:, k] for k, a in enumerate(names)},
    }
    cols |= {f"bbox_{a}0": start[:, k] for k, a in enumerate(names)}
    cols |= {f"bbox_{a}1": stop[:, k] for k, a in enumerate(names)}
    cols["touches_border"] = (start.min(axis=1) == 0) | (stop == np.array(shape)).any(axis=1)
    cols |= {k: v for k, v in sh.items() if k != "centroid"}
    cols["diameter_px"] = np.sqrt(4 * n / math.pi)
    if spacing is not None:
        cols["axis_major_um"] = cols["axis_major_px"] * spacing[0]
        cols["axis_minor_um"] = cols["axis_minor_px"] * spacing[0]
        cols["perimeter_um"] = cols["perimeter_px"] * spacing[-1]
        cols["diameter_um"] = np.sqrt(4 * (n * float(np.prod(spacing))) / math.pi)
    return cols


def _object_columns(lab, group, box: Box, shape, spacing, distance) -> pd.DataFrame:
    """Box, shape and neighbour columns of a group's objects, one object at a time (3D, and
    pixels that are not square)."""
    names = axis_names(lab.ndim)
    rows = []
    for obj in group.itertuples(index=False):
        o = obj._asdict()
        start = [o[f"{a}0"] for a in names]
        stop = [o[f"{a}1"] for a in names]
        sl = tuple(slice(s - b, t - b) for s, t, b in zip(start, stop, box.start))
        row = measure_object(int(o["id"]), lab, sl, spacing, distance)
        row.update({f"bbox_{a}0": s for a, s in zip(names, start)})
        row.update({f"bbox_{a}1": t for a, t in zip(names, stop)})
        row["touches_border"] = min(start) == 0 or any(t == n for t, n in zip(stop, shape))
        row.update({f"centroid_{a}": c + s for a, c, s in zip(names, row.pop("c"), start)})
        rows.append(row)
    return pd.DataFrame(rows)


def _typed(df: pd.DataFrame, ndim: int) -> pd.DataFrame:
    ints = ["id", "neighbors"] + [c for c in df.columns if c.startswith("bbox_")]
    ints.append("area_px" if ndim == 2 else "volume_px")
    other = {*ints, "touches_border", "sample", "kind"}
    want = {c: np.int64 for c in ints} | {c: np.float64 for c in df.columns if c not in other}
    have = df.dtypes
    df = df.astype({c: t for c, t in want.items() if have[c] != t})  # only what differs
    df["touches_border"] = df["touches_border"].astype(bool)
    df[["sample", "kind"]] = df[["sample", "kind"]].astype(str)
    return df
