"""Instances from probability and distance maps: seeded watershed, per-object uncertainty and
consistency, and stitching over tiles so that no object is split or duplicated.

Stitching (memory bounded by tile size): tiles are visited in plan order; each tile's core is
grown by `halo` into a window, instances are extracted from the window's maps, and an instance
is kept only when its anchor (the first pixel, in raster order, of its seed) lies in the tile's
core, so each object is made by exactly one tile. Its pixels are written where the label array
is still empty (the earlier tile in plan order wins a pixel claimed twice). Final ids are the
rank of each object's anchor in raster order over the whole image: they do not depend on the
tiling, and the same maps give the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from ..tiling import Box
from .seeds import h_maxima


@dataclass
class Params:
    """Defaults tuned on a validation split of the BBBC039 training part: h-maxima seeds on
    the smoothed distance map separate touching nuclei that one seed level merges, and a
    foreground threshold of 0.6 fits object outlines tighter. seed_h 0.2 and smooth 2.0 were
    the best AP@0.5 of an 80-point grid (seed_h, smooth, threshold, seed_level) with a model
    trained like the shipped one but without 10 held-out training images (0.867 -> 0.880 on
    them); the sharper distance maps of the longer-trained model made more false seeds at the
    earlier 0.15 / 1.0."""

    threshold: float = 0.6  # foreground probability
    seed_level: float = 0.3  # normalized distance above which a pixel can seed an object
    min_seed: int = 4  # pixels; smaller seeds are dropped (fixed-level seeds only)
    min_size: int = 16  # pixels; smaller objects are dropped
    match_iou: float = 0.5  # a sample reproduces an object when their IoU exceeds this
    seed_h: float = 0.2  # > 0: seeds are the h-maxima of the distance map above seed_level
    smooth: float = 2.0  # Gaussian sigma (pixels) applied to the distance map first
    min_consistency: float = 0.5  # drop objects fewer than this fraction of samples reproduce
    # 2: the samples' objects (consistency) are extracted on a grid of half the resolution in y
    # and x, a quarter of the pixels (issue 15); 1: at full resolution. On the shipped nuclei
    # model's maps (K = 4, scale auto), AP@0.5 with 2 / 1: BBBC039 0.899 / 0.899, DSB2018
    # fluorescence 0.744 / 0.746, colour 0.332 / 0.333 (`scale.params_for` takes 1 for images
    # resampled up: 0.742 on the fluorescence images without that).
    consistency_grid: int = 2
    # Cells: foreground probability, and no pixel further than this from a nucleus. 0.75 beat
    # 0.6 on simulated validation images (seeds 700-709; AP@0.5 0.80 / 0.82 against 0.75 / 0.81
    # on demo-like / varied ones): the cell model hedges on empty, noisy background.
    cell_foreground: float = 0.75
    cell_max_distance: float = 50.0  # pixels

    def halved(self) -> Params:
        """The parameters on a grid of half the resolution in y and x."""
        return replace(self, smooth=self.smooth / 2, min_seed=max(1, self.min_seed // 4),
                       min_size=max(1, self.min_size // 4))  # fmt: skip

    @classmethod
    def from_config(cls, section: dict) -> Params:
        """The fields of a config section (other keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in names})


DEFAULT = Params()


def extract(prob: np.ndarray, dist: np.ndarray, p: Params = DEFAULT):
    """Seeded watershed: labels 1..n and each object's anchor (flat index of its seed's first
    pixel in raster order), sorted by anchor. prob, dist in [0, 1].

    Seeds: where the (optionally smoothed) distance exceeds `seed_level`, or with `seed_h` > 0
    its h-maxima above `seed_level` (separates touching objects whose distance maps do not drop
    below the level between them)."""
    found = _objects(prob, dist, p)
    if found is None:
        return np.zeros(prob.shape, np.int32), np.zeros(0, np.int64)
    lab, seeds, keep = found
    n = len(keep) - 1
    seeded = np.flatnonzero(seeds)  # a sort of the seed pixels only, not of the image
    ids, first = np.unique(seeds.ravel()[seeded], return_index=True)
    anchor = np.full(n + 1, -1, np.int64)
    anchor[ids] = seeded[first]
    order = np.flatnonzero(keep)
    order = order[np.argsort(anchor[order], kind="stable")]
    lut = np.zeros(n + 1, np.int32)
    lut[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    return lut[lab], anchor[order]


def extract_unordered(prob: np.ndarray, dist: np.ndarray, p: Params = DEFAULT) -> np.ndarray:
    """The objects of `extract`, the same pixels, under other ids (their seeds' labels) and
    without anchors: for what does not depend on the ids (`best_iou`: a sample's objects in
    `consistency`), without `extract`'s sort of every pixel by seed."""
    found = _objects(prob, dist, p)
    if found is None:
        return np.zeros(prob.shape, np.int32)
    lab, _, keep = found
    return np.where(keep[lab], lab, 0)


def _objects(prob, dist, p: Params):
    """`extract`'s watershed: (labels by seed, seeds, which seed labels are kept objects), or
    None when there is no seed."""
    mask = prob > p.threshold
    if p.smooth > 0:
        dist = ndi.gaussian_filter(np.asarray(dist, np.float32), p.smooth)
    if p.seed_h > 0:
        d = np.where(mask, dist, 0).astype(np.float32)
        seeds, n = ndi.label(h_maxima(d, p.seed_h, p.seed_level))
    else:
        seeds, n = ndi.label(mask & (dist > p.seed_level))
    if n == 0:
        return None
    sizes = np.bincount(seeds.ravel(), minlength=n + 1)
    if p.seed_h <= 0:
        seeds[sizes[seeds] < p.min_seed] = 0
    lab = watershed(-dist, seeds, mask=mask).astype(np.int32)
    area = np.bincount(lab.ravel(), minlength=n + 1)
    keep = (area >= p.min_size) & ((sizes >= p.min_seed) | (p.seed_h > 0))
    keep[0] = False
    return lab, seeds, keep


def drop_inconsistent(labels: np.ndarray, cons: np.ndarray, min_consistency: float):
    """Remove objects whose consistency is below `min_consistency`; labels are renumbered
    1..n in their old order. Returns (labels, consistency of the kept objects)."""
    keep = np.asarray(cons) >= min_consistency
    lut = np.zeros(len(keep) + 1, np.int32)
    lut[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels], np.asarray(cons)[keep]


def best_iou(ref: np.ndarray, other: np.ndarray, n_ref: int) -> np.ndarray:
    """For objects 1..n_ref of `ref`, the best IoU with any object of `other`."""
    return Reference(ref, n_ref).best_iou(other)


class Reference:
    """Objects 1..n of `labels` that several label images are compared with (`best_iou`, once
    per sample in `consistency` and `cell_hits`): their pixels and areas found once, so each
    comparison reads the other image at those pixels and counts its areas, not every pixel
    of both images several times over (issue 15)."""

    def __init__(self, labels: np.ndarray, n: int):
        flat = np.asarray(labels).ravel()
        self.at = np.flatnonzero(flat)
        self.ids = flat[self.at]
        self.area = np.bincount(self.ids, minlength=n + 1)
        self.n = n

    def best_iou(self, other: np.ndarray) -> np.ndarray:
        """For each object, the best IoU with any object of `other` (the same shape)."""
        out = np.zeros(self.n + 1)
        flat = np.asarray(other).ravel()
        theirs = flat[self.at]
        both = theirs > 0
        if not both.any():
            return out[1:]
        mine, theirs = self.ids[both], theirs[both]
        area_a, area_b = self.area, np.bincount(flat)
        ids_a, ids_b = np.flatnonzero(area_a), np.flatnonzero(area_b)  # ids present: few
        rank_a, rank_b = np.zeros(len(area_a), np.int64), np.zeros(len(area_b), np.int64)
        rank_a[ids_a], rank_b[ids_b] = np.arange(len(ids_a)), np.arange(len(ids_b))
        keys = rank_a[mine] * len(ids_b) + rank_b[theirs]
        if len(ids_a) * len(ids_b) <= 4 * len(keys):  # count the pairs without sorting them
            inter = np.bincount(keys)
            pairs = np.flatnonzero(inter)
            inter = inter[pairs]
        else:
            pairs, inter = np.unique(keys, return_counts=True)
        pa, pb = ids_a[pairs // len(ids_b)], ids_b[pairs % len(ids_b)]
        iou = inter / (area_a[pa] + area_b[pb] - inter)
        np.maximum.at(out, pa, iou)
        return out[1:]


def consistency(labels: np.ndarray, n: int, sample_maps: Sequence[tuple], p: Params) -> np.ndarray:
    """Fraction of the K samples whose own instances reproduce each object (IoU > match_iou).
    A sample's instances are extracted on the grid of `p.consistency_grid` and compared at full
    resolution."""
    if n == 0 or not sample_maps:
        return np.zeros(n)
    hits, ref = np.zeros(n), Reference(labels, n)
    for fg, dist in sample_maps:  # the IoUs do not depend on the sample's ids
        hits += ref.best_iou(_on_sample_grid(extract_unordered, fg, dist, p)) > p.match_iou
    return hits / len(sample_maps)


def _on_sample_grid(make: Callable, fg, dist, p: Params) -> np.ndarray:
    """`make(fg, dist, params)`'s labels on the grid of `p.consistency_grid`, at full
    resolution: made there from the maps `halved` and `doubled` back (grid 2), or as they are."""
    if p.consistency_grid == 1:
        return make(fg, dist, p)
    return doubled(make(halved(fg), halved(dist), p.halved()), np.shape(fg))


def halved(a: np.ndarray) -> np.ndarray:
    """The mean of each 2 x 2 block of y and x (an odd last row or column repeated)."""
    a = np.asarray(a, np.float32)
    if a.shape[-2] % 2 or a.shape[-1] % 2:
        pad = [(0, 0)] * (a.ndim - 2) + [(0, a.shape[-2] % 2), (0, a.shape[-1] % 2)]
        a = np.pad(a, pad, mode="edge")
    return 0.25 * (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2])


def doubled(lab: np.ndarray, shape) -> np.ndarray:
    """Labels of the half-resolution grid back on the full one (`shape`)."""
    out = np.repeat(np.repeat(lab, 2, axis=-2), 2, axis=-1)
    return out[..., : shape[-2], : shape[-1]]


@dataclass
class Window:
    """Maps of one kind in a window: prob, std, dist ([Z,] Y, X in [0, 1]) and the K samples'
    (fg, dist) pairs."""

    prob: np.ndarray
    std: np.ndarray
    dist: np.ndarray
    samples: list


def _window(core: Box, halo: int, shape: tuple[int, ...]) -> Box:
    """`core` grown by `halo` on every side, clipped to the image."""
    return Box(
        tuple(max(0, a - halo) for a in core.start),
        tuple(min(n, b + halo) for b, n in zip(core.stop, shape)),
    )


def _write_unclaimed(out, win: Box, new: np.ndarray) -> None:
    """Write the objects of `new` into `out[win]` where no earlier tile has written one."""
    cur = np.asarray(out[win.slices])
    free = (cur == 0) & (new > 0)
    if free.any():
        cur = cur.copy()
        cur[free] = new[free]
        out[win.slices] = cur


def stitch(
    read: Callable[[Box], Window],
    cores: Sequence[Box],
    shape: Sequence[int],
    out,
    halo: int = 64,
    p: Params = DEFAULT,
) -> dict:
    """Extract instances tile by tile into `out` (an int32 array of `shape`, zero-filled; zarr
    or numpy). Returns per-object facts keyed by final id: anchor (global coords),
    consistency. Final ids are 1..N in raster order of the anchors."""
    shape = tuple(int(s) for s in shape)
    anchors, cons = [], []
    for core in cores:
        win = _window(core, halo, shape)
        w = read(win)
        lab, anchor = extract(w.prob, w.dist, p)
        if not len(anchor):
            continue
        local = np.stack(np.unravel_index(anchor, lab.shape), -1) + np.array(win.start)
        inside = np.all((local >= core.start) & (local < core.stop), axis=1)
        if not inside.any():
            continue
        ids = np.flatnonzero(inside) + 1
        keep = np.zeros(len(anchor) + 1, bool)
        keep[ids] = True
        c = consistency(np.where(keep[lab], lab, 0), len(anchor), w.samples, p)[ids - 1]
        if p.min_consistency > 0 and w.samples:  # objects most samples do not reproduce
            ok = c >= p.min_consistency
            ids, c, inside = ids[ok], c[ok], np.isin(np.arange(1, len(anchor) + 1), ids[ok])
            if not len(ids):
                continue
        base = len(anchors)
        lut = np.zeros(len(anchor) + 1, np.int32)
        lut[ids] = np.arange(base + 1, base + len(ids) + 1)
        new = lut[lab]
        _write_unclaimed(out, win, new)
        anchors += [tuple(int(v) for v in a) for a in local[inside]]
        cons += list(c)
    n = len(anchors)
    if n == 0:
        return {"anchor": np.zeros((0, len(shape)), np.int64), "consistency": np.zeros(0)}
    anc = np.array(anchors, np.int64)
    order = np.lexsort(anc.T[::-1])  # raster order: first axis slowest
    rank = np.empty(n, np.int32)
    rank[order] = np.arange(1, n + 1, dtype=np.int32)
    lut = np.concatenate([[0], rank]).astype(np.int32)
    for core in cores:  # relabel provisional ids -> final ids, block by block
        block = np.asarray(out[core.slices])
        if block.any():
            out[core.slices] = lut[block]
    return {"anchor": anc[order], "consistency": np.asarray(cons)[order]}


def link_cells(
    read_cells: Callable[[Box], Window],
    read_nuclei: Callable[[Box], np.ndarray],
    nucleus_anchor: np.ndarray,
    cores: Sequence[Box],
    shape: Sequence[int],
    out,
    halo: int = 64,
    p: Params = DEFAULT,
) -> dict:
    """Cells grown from the final nuclei labels (watershed on the cell distance map inside the
    cell foreground), so each cell's id is its nucleus's id. A cell is written by the tile
    whose core holds its nucleus's anchor. Returns consistency per cell id (index id - 1)."""
    shape = tuple(int(s) for s in shape)
    n = len(nucleus_anchor)
    cons, k = np.zeros(n), 0
    for core in cores:
        win = _window(core, halo, shape)
        w, nuc = read_cells(win), read_nuclei(win)
        if not nuc.any():
            continue
        near = reach(nuc, p)  # once per window: the mean and every sample share it
        lab = cells_from(w.prob, w.dist, nuc, p, near)
        own = np.zeros(n + 1, bool)
        inside = np.all((nucleus_anchor >= core.start) & (nucleus_anchor < core.stop), axis=1)
        own[1:] = inside
        new = np.where(own[lab], lab, 0)
        if not new.any():
            continue
        k = len(w.samples)  # the same in every window
        cons += cell_hits(new, nuc, n, w.samples, p, near) * own[1:]
        _write_unclaimed(out, win, new)
    return {"consistency": cons / max(k, 1)}


def cell_hits(cells, nuclei, n: int, sample_maps: Sequence[tuple], p: Params = DEFAULT, near=None):
    """For cells 1..n (cell id = nucleus id): how many of the samples' own cells, grown from the
    same nuclei on the grid of `p.consistency_grid` (as `consistency` does), reproduce each
    (IoU > match_iou)."""
    near = reach(nuclei, p) if near is None else near
    g = p.consistency_grid  # the nuclei (and where cells may be) at every g-th pixel
    seeds, room = nuclei[..., ::g, ::g], near[..., ::g, ::g]

    def grow(fg, dist, q):
        return cells_from(fg, dist, seeds, q, room)

    hits, ref = np.zeros(n, np.int64), Reference(cells, n)
    for fg, dist in sample_maps:
        hits += ref.best_iou(_on_sample_grid(grow, fg, dist, p)) > p.match_iou
    return hits


def reach(nuclei, p: Params = DEFAULT) -> np.ndarray:
    """Where a cell may be: at most `p.cell_max_distance` pixels from a nucleus."""
    if not nuclei.any():
        return np.zeros(nuclei.shape, bool)
    return ndi.distance_transform_edt(nuclei == 0) <= p.cell_max_distance


def cells_from(prob, dist, nuclei, p: Params = DEFAULT, near=None) -> np.ndarray:
    """Cells grown from `nuclei` by a watershed of the distance map inside the foreground
    (`prob` above `p.cell_foreground`, within `near`, by default `reach(nuclei, p)`); each cell
    is one region (the watershed floods from its nucleus) without holes."""
    if not nuclei.any():
        return np.zeros(nuclei.shape, np.int32)
    near = reach(nuclei, p) if near is None else near
    mask = ((prob > p.cell_foreground) & near) | (nuclei > 0)
    return fill_holes(watershed(-dist, nuclei, mask=mask).astype(np.int32))


def fill_holes(labels: np.ndarray) -> np.ndarray:
    """A copy of `labels` where background enclosed by one object becomes that object (the
    lower id where objects nest).

    Only background cut off from the image border (a pocket: a 4-connected component of it
    that does not touch the border) can be in a hole of an object, and then the whole pocket
    is, inside the object's box: background connected to the border leaves every object's box
    through background. So only the objects whose box holds a whole pocket are filled (each as
    before, in the same order); most are not."""
    out = labels.copy()
    pockets, n = ndi.label(labels == 0)
    if n == 0:
        return out
    rim = np.zeros(n + 1, bool)
    for axis in range(labels.ndim):
        rim[np.take(pockets, [0, -1], axis=axis)] = True
    boxes = [sl for i, sl in enumerate(ndi.find_objects(pockets), start=1) if not rim[i]]
    if not boxes:
        return out
    lo = np.array([[s.start for s in sl] for sl in boxes])  # (pockets, ndim)
    hi = np.array([[s.stop for s in sl] for sl in boxes])
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        start, stop = [s.start for s in sl], [s.stop for s in sl]
        if not np.any(np.all((lo >= start) & (hi <= stop), axis=1)):
            continue  # no pocket inside its box: it has no hole to fill
        crop = out[sl]
        crop[ndi.binary_fill_holes(crop == i) & (crop == 0)] = i
    return out
