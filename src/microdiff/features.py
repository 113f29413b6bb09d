"""Per-object feature tables, computed tile-wise with memory bounded by tile and object size.

Two passes over one sample:

1. `object_bboxes` reads the label image tile by tile (tile cores partition the image), finds
   every object's box in each tile core and takes the union per id. An object that crosses tile
   borders gets one box, so it is counted once.
2. `object_table` groups objects by the tile holding their box start, reads the union of the
   group's boxes (grown by a margin) once, and measures each object from its own box. Memory is
   bounded by tile size plus the largest object, never by the image.

Conventions of the output (one row per object, sorted by `id`):

- Positions are in pixel (voxel) index coordinates of the label image: `centroid_{z,y,x}`, and
  the half-open box `bbox_{z,y,x}0` / `bbox_{z,y,x}1`. `touches_border` is true when the box
  meets the image edge (the object may be cut by the field of view).
- Shape columns are in pixel units and say so: `area_px` (2D) or `volume_px` (3D) is the pixel
  count; `perimeter_px`, `axis_major_px`, `axis_minor_px`, `diameter_px` (equivalent diameter)
  are lengths in pixels. `eccentricity` and `solidity` have no unit.
- Physical columns are always present and NaN without `pixel_size`: `area_um2` / `volume_um3`,
  `centroid_{a}_um`, and the lengths `perimeter_um`, `axis_major_um`, `axis_minor_um`,
  `diameter_um`. Perimeter (2D) needs square pixels; axis lengths of anisotropic voxels come
  from moments computed with the voxel spacing.
- 3D: `perimeter_*` and `eccentricity` are undefined and NaN. Solidity of an object whose voxels
  are coplanar is NaN.
- Per channel `ch`: `intensity_{mean,median,std,min,max,integrated}_{ch}` (std with ddof=0,
  integrated = sum over the object's pixels) and Haralick statistics
  `texture_{contrast,dissimilarity,homogeneity,energy,correlation,asm}_{ch}` from a grey-level
  co-occurrence matrix at distance 1, averaged over the four in-plane directions (0, 45, 90,
  135 degrees; symmetric). Only pairs of pixels both inside the object count. Intensities are
  quantised to `texture_levels` levels over the object's own min..max, so texture describes the
  pattern, not the brightness (the intensity columns carry that). In 3D the matrices of all
  z-planes are summed (in-plane texture). Objects without any pixel pair are NaN.
- `neighbors`: how many other objects have a pixel within Euclidean distance `neighbor_distance`
  (pixels) of the object; 1 means touching (edge contact), the default 2 allows a 1-px gap.
- Segmentation uncertainty: `uncertainty_mean` / `uncertainty_max` of the per-pixel uncertainty
  image over the object, `uncertainty_object` from the per-object table; NaN when not given.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import regionprops

from .tiling import Box, axis_names, plan_tiles, read_box

INTENSITY_STATS = ("mean", "median", "std", "min", "max", "integrated")
TEXTURE_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def default_tile(ndim: int) -> tuple[int, ...]:
    """1024 x 1024 in 2D; 64 x 512 x 512 in 3D (about the same number of bytes per read)."""
    return (1024, 1024) if ndim == 2 else (64, 512, 512)


def _chunks_of(array) -> tuple[int, ...] | None:
    chunks = getattr(array, "chunks", None)
    if chunks is None or not all(isinstance(c, int | np.integer) for c in chunks):
        return None
    return tuple(int(c) for c in chunks)


def tile_grid(labels, tile, chunks) -> tuple[pd.DataFrame, tuple[int, ...]]:
    """The tile plan over the label image and the effective tile edge per axis."""
    shape = tuple(labels.shape)
    tile = default_tile(len(shape)) if tile is None else tile
    chunks = _chunks_of(labels) if chunks is None else chunks
    plan = plan_tiles(shape, tile, halo=0, chunks=chunks, tiles_per_shard=1 << 30)
    names = axis_names(len(shape))
    edge = tuple(int(plan[f"{a}1"].iloc[0] - plan[f"{a}0"].iloc[0]) for a in names)
    return plan, edge


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
    plan, _ = tile_grid(labels, tile, chunks)
    names = axis_names(labels.ndim)
    parts = []
    for row in plan.itertuples(index=False):
        r = row._asdict()
        core = Box(tuple(r[f"{a}0"] for a in names), tuple(r[f"{a}1"] for a in names))
        ids, starts, stops = _boxes_in(read_box(labels, core, channel_axis=False))
        if len(ids):
            offset = np.array(core.start, np.int64)
            parts.append((ids, starts + offset, stops + offset))
    cols = ["id"] + [f"{a}0" for a in names] + [f"{a}1" for a in names]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in cols})
    ids = np.concatenate([p[0] for p in parts])
    starts = np.concatenate([p[1] for p in parts])
    stops = np.concatenate([p[2] for p in parts])
    df = pd.DataFrame(np.column_stack([ids, starts, stops]), columns=cols)
    agg = {f"{a}0": "min" for a in names} | {f"{a}1": "max" for a in names}
    return df.groupby("id", sort=True).agg(agg).reset_index()


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


def texture(values: np.ndarray, mask: np.ndarray, levels: int = 32) -> dict[str, float]:
    """Haralick statistics of the pixels under `mask` (2D, or 3D summed over z-planes).

    Values are quantised to `levels` grey levels over their own min..max; pairs that involve a
    pixel outside the mask are dropped; the statistics are averaged over the directions that
    have pixel pairs. All NaN when the object has no pixel pair.
    """
    vals = values[mask].astype(np.float64)
    q = np.zeros(mask.shape, np.uint8 if levels < 255 else np.uint16)
    lo, hi = (vals.min(), vals.max()) if vals.size else (0.0, 0.0)
    if hi > lo:
        step = np.floor((vals - lo) / (hi - lo) * levels).astype(np.int64)
        q[mask] = 1 + np.minimum(step, levels - 1)
    else:
        q[mask] = 1
    planes = q if q.ndim == 3 else q[None]
    glcm = sum(
        graycomatrix(p, [1], ANGLES, levels=levels + 1, symmetric=True).astype(np.float64)
        for p in planes
    )[1:, 1:]
    counts = glcm.sum(axis=(0, 1))[0]
    if not (counts > 0).any():
        return {p.lower(): math.nan for p in TEXTURE_PROPS}
    glcm = glcm[..., counts > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {p.lower(): float(graycoprops(glcm, p).mean()) for p in TEXTURE_PROPS}


def _shape(mask: np.ndarray, spacing) -> dict[str, float]:
    """Pixel-unit shape of one object's mask (and physical axis lengths for given spacing)."""
    ndim = mask.ndim
    m = mask.astype(np.uint8)
    rp = regionprops(m)[0]
    n = int(rp.num_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            solidity = float(rp.solidity)
    out = {
        "n": n,
        "centroid": np.asarray(rp.centroid, np.float64),
        "perimeter_px": float(rp.perimeter) if ndim == 2 else math.nan,
        "eccentricity": float(rp.eccentricity) if ndim == 2 else math.nan,
        "solidity": solidity if 0 < solidity <= 1 else math.nan,
        "axis_major_px": float(rp.axis_major_length),
        "axis_minor_px": float(rp.axis_minor_length),
        "diameter_px": _diameter(n, ndim),
    }
    if spacing is not None:
        iso = len(set(spacing)) == 1
        if iso:
            major = out["axis_major_px"] * spacing[0]
            minor = out["axis_minor_px"] * spacing[0]
        else:
            rs = regionprops(m, spacing=spacing)[0]
            major, minor = float(rs.axis_major_length), float(rs.axis_minor_length)
        plane_iso = ndim == 2 and spacing[-1] == spacing[-2]
        out["axis_major_um"], out["axis_minor_um"] = major, minor
        out["perimeter_um"] = out["perimeter_px"] * spacing[-1] if plane_iso else math.nan
        out["diameter_um"] = _diameter(n * float(np.prod(spacing)), ndim)
    return out


def _diameter(size: float, ndim: int) -> float:
    """Diameter of the disc (2D) or ball (3D) with the given area or volume."""
    return math.sqrt(4 * size / math.pi) if ndim == 2 else (6 * size / math.pi) ** (1 / 3)


def _neighbors(lab: np.ndarray, sl: tuple[slice, ...], oid: int, distance: float) -> int:
    """Other labels with a pixel within `distance` of the object (lab holds the margin)."""
    r = math.ceil(distance)
    grown = tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, n in zip(sl, lab.shape))
    sub = lab[grown]
    near = ndi.distance_transform_edt(sub != oid) <= distance
    found = np.unique(sub[near])
    return int(np.count_nonzero((found != 0) & (found != oid)))


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


def _group_box(group: pd.DataFrame, names, margin: int, shape) -> Box:
    lo = [max(int(group[f"{a}0"].min()) - margin, 0) for a in names]
    hi = [min(int(group[f"{a}1"].max()) + margin, n) for a, n in zip(names, shape)]
    return Box(tuple(lo), tuple(hi))


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
    spatial axes; `object_uncertainty` maps id -> uncertainty. `tile` (default `default_tile`)
    bounds each read; tiles align to `chunks` (default: the label array's own chunks). See the
    module docstring for the columns and their units.
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

    boxes = object_bboxes(labels, tile, chunks)
    if boxes.empty:
        return _typed(pd.DataFrame(columns=columns), ndim)
    _, edge = tile_grid(labels, tile, chunks)
    keys = [boxes[f"{a}0"].to_numpy() // e for a, e in zip(names, edge)]
    keys = np.ravel_multi_index(keys, [math.ceil(n / e) for n, e in zip(shape, edge)])
    margin = max(math.ceil(neighbor_distance), 1)
    frames = []  # one frame per tile group: columns of numbers, not a dict per object
    for _, group in boxes.groupby(keys, sort=True):
        rows = []
        box = _group_box(group, names, margin, shape)
        lab = read_box(labels, box, channel_axis=False)
        img = None if image is None else _read_image(image, box, has_channels)
        unc = None if uncertainty is None else read_box(uncertainty, box, channel_axis=False)
        for obj in group.itertuples(index=False):
            o = obj._asdict()
            start = [o[f"{a}0"] for a in names]
            stop = [o[f"{a}1"] for a in names]
            sl = tuple(slice(s - b, t - b) for s, t, b in zip(start, stop, box.start))
            row = _measure(
                int(o["id"]),
                lab,
                sl,
                img,
                unc,
                spacing,
                neighbor_distance,
                texture_levels,
                channel_names,
            )
            row.update({f"bbox_{a}0": s for a, s in zip(names, start)})
            row.update({f"bbox_{a}1": t for a, t in zip(names, stop)})
            row["touches_border"] = min(start) == 0 or any(t == n for t, n in zip(stop, shape))
            row.update({f"centroid_{a}": c + s for a, c, s in zip(names, row.pop("c"), start)})
            rows.append(row)
        frames.append(pd.DataFrame(rows))
    df = pd.concat(frames, ignore_index=True)
    size = "area" if ndim == 2 else "volume"
    df[f"{size}_px"] = df.pop("n")
    if spacing is not None:
        df[f"{size}_{'um2' if ndim == 2 else 'um3'}"] = df[f"{size}_px"] * float(np.prod(spacing))
        for a, p in zip(names, spacing):
            df[f"centroid_{a}_um"] = df[f"centroid_{a}"] * p
    df["sample"], df["kind"] = sample, kind
    if obj_unc is not None:
        df["uncertainty_object"] = df["id"].map(obj_unc)
    df = df.reindex(columns=columns).sort_values("id", ignore_index=True)
    return _typed(df, ndim)


def _measure(oid, lab, sl, img, unc, spacing, distance, levels, channel_names) -> dict:
    """Shape, neighbours, intensity, texture and uncertainty of one object (box `sl` in lab)."""
    mask = lab[sl] == oid
    shape = _shape(mask, spacing)
    row = {"id": oid, "n": shape.pop("n"), "c": shape.pop("centroid"), **shape}
    row["neighbors"] = _neighbors(lab, sl, oid, distance)
    if img is not None:
        pix = img[(slice(None), *sl)]
        for ch, values in zip(channel_names, pix):
            v = values[mask].astype(np.float64)
            stats = (v.mean(), np.median(v), v.std(), v.min(), v.max(), v.sum())
            row.update({f"intensity_{s}_{ch}": float(x) for s, x in zip(INTENSITY_STATS, stats)})
            tex = texture(values, mask, levels)
            row.update({f"texture_{p}_{ch}": x for p, x in tex.items()})
    if unc is not None:
        u = unc[sl][mask].astype(np.float64)
        row["uncertainty_mean"], row["uncertainty_max"] = float(u.mean()), float(u.max())
    return row


def _typed(df: pd.DataFrame, ndim: int) -> pd.DataFrame:
    ints = ["id", "neighbors"] + [c for c in df.columns if c.startswith("bbox_")]
    ints.append("area_px" if ndim == 2 else "volume_px")
    df = df.astype({c: np.int64 for c in ints})
    df["touches_border"] = df["touches_border"].astype(bool)
    df[["sample", "kind"]] = df[["sample", "kind"]].astype(str)
    rest = [c for c in df.columns if c not in ints + ["touches_border", "sample", "kind"]]
    return df.astype({c: np.float64 for c in rest})


def experiment_table(paths: Iterable) -> pd.DataFrame:
    """All samples' object tables in one frame (columns missing in a sample are NaN)."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)


# -- one sample's stores (the workflow's `features` stage) ------------------------------------

#: NGFF label group name -> the `kind` written in the objects table
LABEL_KINDS = {"nuclei": "nucleus", "cells": "cell"}
UNCERTAINTY_SUFFIXES = ("_std", "_uncertainty", "_entropy")


class _View:
    """A lazy view of an array: fixed leading indices (a channel, a singleton axis) dropped."""

    def __init__(self, array, lead: tuple[int, ...] = ()):
        self.array, self.lead = array, tuple(lead)
        self.shape = tuple(array.shape[len(self.lead) :])
        self.ndim, self.dtype = len(self.shape), array.dtype
        chunks = _chunks_of(array)
        self.chunks = None if chunks is None else chunks[len(self.lead) :]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.array[self.lead + key])


class _Stack:
    """Channels of several (C, [Z,] Y, X) arrays of one grid, read as one array."""

    def __init__(self, arrays):
        self.arrays = list(arrays)
        first = self.arrays[0].shape
        self.shape = (sum(a.shape[0] for a in self.arrays), *first[1:])
        self.ndim, self.dtype, self.chunks = len(self.shape), np.float32, None

    def __getitem__(self, key):
        c, *spatial = key
        parts = [np.asarray(a[(slice(None), *spatial)], np.float32) for a in self.arrays]
        return np.concatenate(parts)[c]


def _label_view(array, ndim: int) -> _View:
    """Instance labels as ([Z,] Y, X): leading singleton axes (a channel axis) squeezed."""
    lead = []
    while len(array.shape) - len(lead) > ndim:
        if array.shape[len(lead)] != 1:
            raise ValueError(f"labels of shape {array.shape} for a {ndim}-D image")
        lead.append(0)
    return _View(array, tuple(lead))


def _level0(group):
    meta = group.attrs.get("ome", group.attrs)
    return group[meta["multiscales"][0]["datasets"][0]["path"]]


def segmentation_layers(path, ndim: int) -> dict[str, dict]:
    """Label name -> {labels, uncertainty} (lazy views) of a `segmentation.ome.zarr`.

    Labels come from the NGFF `labels` group (level 0 of each; a leading singleton axis is
    squeezed). The per-pixel uncertainty of `nuclei` is the image channel labelled
    `nuclei_std` (or `_uncertainty`, `_entropy`); None when the store has none.
    """
    import zarr

    root = zarr.open_group(str(path), mode="r")
    names = list(root["labels"].attrs.get("labels", [])) if "labels" in root else []
    channels, image = [], None
    if "multiscales" in root.attrs or "ome" in root.attrs:
        image = _level0(root)
        omero = root.attrs.get("omero") or root.attrs.get("ome", {}).get("omero", {})
        channels = [ch.get("label", "") for ch in omero.get("channels", [])]
    out = {}
    for name in names:
        lab = _label_view(_level0(root["labels"][name]), ndim)
        unc = None
        for suffix in UNCERTAINTY_SUFFIXES:
            if f"{name}{suffix}" in channels:
                unc = _View(image, (channels.index(f"{name}{suffix}"),))
                break
        if unc is not None and unc.shape != lab.shape:
            unc = _label_view(unc, ndim)
        out[name] = {"labels": lab, "uncertainty": unc}
    return out


def measure_sample(
    segmentation,
    images: Sequence,
    sample: str,
    segments=None,
    tile=None,
    neighbor_distance: float = 2.0,
    texture_levels: int = 32,
    norm_json=None,
) -> pd.DataFrame:
    """The objects table of one sample: every label layer of `segmentation` (nuclei, cells).

    `images` are NGFF image stores on the label grid (raw first; with a second one, e.g. the
    restored image, its channels are measured too, named `restored_<channel>`); pixel size and
    channel names come from the first. `segments` is the segment stage's per-object table
    (`kind`, `id`, `uncertainty`), optional. Raises ValueError when an image is not on the
    label grid (a super-resolved restoration: measure on raw). With `norm_json` computed on
    flat-field corrected images, the raw image is measured corrected (`normalize.level0`).
    """
    from .io.readers import open_image
    from .normalize import Normalizer, level0

    norm = Normalizer.from_json(norm_json) if norm_json else None
    srcs = [open_image(p) for p in images]
    first = srcs[0]
    ndim = len(first.spatial_shape)
    arrays, names = [], []
    for i, src in enumerate(srcs):
        if src.src_axes != src.axes:
            raise ValueError(f"{src.path}: expected an NGFF image with axes {src.axes}")
        if src.spatial_shape != first.spatial_shape:
            raise ValueError(
                f"{src.path}: grid {src.spatial_shape} differs from {first.spatial_shape}; "
                "measure intensities on the raw image"
            )
        arrays.append(src.array if i or not norm_json else level0(src.path, norm))
        prefix = "" if i == 0 else f"{Path(src.path).name.split('.')[0]}_"
        names += [f"{prefix}{c}" for c in src.channel_names]
    image = arrays[0] if len(arrays) == 1 else _Stack(arrays)
    spacing = [first.scale.get(a) for a in "zyx"[3 - ndim :]]
    pixel_size = None if any(s is None for s in spacing) else spacing
    table = None if segments is None else pd.DataFrame(segments)
    frames = []
    for name, layer in segmentation_layers(segmentation, ndim).items():
        if layer["labels"].shape != first.spatial_shape:
            raise ValueError(
                f"{segmentation}: labels/{name} grid {layer['labels'].shape} differs from the "
                f"image grid {first.spatial_shape}"
            )
        kind = LABEL_KINDS.get(name, name)
        per_object = None
        if table is not None and {"kind", "id", "uncertainty"} <= set(table.columns):
            rows = table[table["kind"].isin([name, kind])]
            per_object = rows[["id", "uncertainty"]] if len(rows) else None
        frames.append(
            object_table(
                layer["labels"],
                image,
                sample=sample,
                channel_names=names,
                pixel_size=pixel_size,
                uncertainty=layer["uncertainty"],
                object_uncertainty=per_object,
                tile=tile,
                neighbor_distance=neighbor_distance,
                texture_levels=texture_levels,
                kind=kind,
            )
        )
    if not frames:
        raise ValueError(f"{segmentation}: no label layers under labels/")
    return pd.concat(frames, ignore_index=True)
