"""New instance masks made from the annotated objects themselves.

An `ObjectBank` holds the experiment's own objects (tight binary crops of every annotated object
that does not touch its image's border, with its class where known), their area range and the
observed object densities (objects per pixel, one value per annotated image, border objects
counted). `sample_layout` draws a new label image: a density from the observed ones, a Poisson
number of objects for the image's area, and for each a shape from the bank, randomly rotated,
flipped and scaled (the area kept inside the observed range), placed at a random centre (objects
may be cut by the image border) under an overlap rule: a placement is accepted when at most
`max_overlap` of the object's pixels fall on earlier objects, which keep the shared pixels.
Ids are 1..N in placement order, so a seed fixes the labels exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi


@dataclass
class Layout:
    labels: np.ndarray  # (Y, X) int32, 0 background, ids 1..N
    classes: np.ndarray  # (N,) int class of id i + 1 (-1 where classes are unknown)
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # bank index


@dataclass
class ObjectBank:
    masks: list[np.ndarray]  # bool crops, one per whole object
    classes: np.ndarray  # (n,) int, -1 unknown
    densities: np.ndarray  # objects per pixel, one per annotated image
    n_classes: int = 0

    @property
    def areas(self) -> np.ndarray:
        return np.array([int(m.sum()) for m in self.masks])

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[np.ndarray],
        classes: Sequence[dict | None] | None = None,
        min_area: int = 9,
    ) -> ObjectBank:
        """Objects of 2D label images; `classes[i]` maps an id of image i to its class (int)."""
        whole, cut, dens = [], [], []
        n_classes = 0
        for i, lab in enumerate(labels):
            lab = np.asarray(lab)
            if lab.ndim != 2:
                raise ValueError(f"label image {i} is {lab.ndim}D; the mask sampler is 2D")
            table = (classes[i] if classes is not None else None) or {}
            if table:
                n_classes = max(n_classes, max(int(v) for v in table.values()) + 1)
            ids = np.unique(lab[lab > 0])
            dens.append(len(ids) / lab.size)
            for j, sl in enumerate(ndi.find_objects(lab), start=1):
                if sl is None:
                    continue
                touches = any(s.start == 0 or s.stop == n for s, n in zip(sl, lab.shape))
                crop = lab[sl] == j
                if crop.sum() < min_area:
                    continue
                item = (crop, int(table.get(j, -1)))
                (cut if touches else whole).append(item)
        whole = whole or cut  # only objects cut by borders: better their shapes than none
        masks, cl = [m for m, _ in whole], [c for _, c in whole]
        if not masks:
            raise ValueError("no annotated objects to draw shapes from")
        return cls(masks, np.array(cl, np.int64), np.array(dens, float), n_classes)

    def stats(self) -> dict:
        a = self.areas
        return {
            "objects": len(self.masks),
            "area_min": int(a.min()),
            "area_median": float(np.median(a)),
            "area_max": int(a.max()),
            "density_per_mpx": [round(float(d) * 1e6, 1) for d in self.densities],
            "n_classes": self.n_classes,
        }


def transform_shape(
    mask: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.85, 1.15),
    area_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """A random rotation (any angle), flip and isotropic scale of a binary shape; the scaled
    area is kept inside `area_range` (the observed one). Returns a tight bool crop."""
    s = float(rng.uniform(*scale))
    if area_range is not None:
        area = max(int(mask.sum()), 1)
        lo, hi = area_range
        s = float(np.clip(s, np.sqrt(lo / area), np.sqrt(hi / area)))
    angle = float(rng.uniform(0.0, 360.0))
    flip = bool(rng.random() < 0.5)
    m = np.pad(mask.astype(np.float32), 2)
    if flip:
        m = m[:, ::-1]
    m = ndi.zoom(m, s, order=1)
    m = ndi.rotate(m, angle, order=1, reshape=True) > 0.5
    if not m.any():
        return mask.copy()
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    return m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def sample_layout(
    bank: ObjectBank,
    shape: Sequence[int],
    rng: np.random.Generator,
    density_scale: float = 1.0,
    max_overlap: float = 0.0,
    scale: tuple[float, float] = (0.85, 1.15),
    tries: int = 30,
    min_visible: float = 0.3,
    class_weights: Sequence[float] | None = None,
) -> Layout:
    """A new label image of `shape` from the bank (see the module docstring).

    `density_scale` multiplies the drawn density; `min_visible`: an object cut by the border
    keeps at least this share of its pixels inside; `class_weights`: sampling weight per class
    (default: as observed).
    """
    shape = tuple(int(v) for v in shape)
    density = float(rng.choice(bank.densities)) * density_scale
    n = int(rng.poisson(density * shape[0] * shape[1]))
    areas = bank.areas
    area_range = (int(areas.min()), int(areas.max()))
    p = None
    if class_weights is not None and bank.n_classes:
        w = np.asarray(class_weights, float)[np.clip(bank.classes, 0, None)]
        p = w / w.sum()
    out = np.zeros(shape, np.int32)
    classes, sources = [], []
    for _ in range(n):
        k = int(rng.choice(len(bank.masks), p=p))
        m = transform_shape(bank.masks[k], rng, scale, area_range)
        h, w = m.shape
        for _ in range(tries):
            cy, cx = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
            y0, x0 = cy - h // 2, cx - w // 2
            ys, xs = (
                slice(max(y0, 0), min(y0 + h, shape[0])),
                slice(max(x0, 0), min(x0 + w, shape[1])),
            )
            part = m[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            if part.sum() < min_visible * m.sum():
                continue
            region = out[ys, xs]
            taken = np.count_nonzero(part & (region > 0))
            if taken > max_overlap * part.sum():
                continue
            new = len(classes) + 1
            region[part & (region == 0)] = new
            classes.append(int(bank.classes[k]))
            sources.append(k)
            break
    return _compact(out, np.array(classes, np.int64), np.array(sources, np.int64))


def _compact(labels: np.ndarray, classes: np.ndarray, sources: np.ndarray) -> Layout:
    """Drop ids left without pixels; renumber 1..N keeping placement order."""
    present = np.bincount(labels.ravel(), minlength=len(classes) + 1)[1:] > 0
    lut = np.zeros(len(classes) + 1, np.int32)
    lut[1:][present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return Layout(lut[labels], classes[present], sources[present])
