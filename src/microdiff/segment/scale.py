"""Resampling an image to the object size its model was trained at (`segment.scale`).

A model learns nuclei of the sizes in its training data; a 10x image's nuclei of 9 pixels or a
63x image's of 90 are outside what it saw. `segment.scale` is the factor every tile is resampled
by (bilinear, antialiased when shrinking) before the network, whose maps are resampled back to
the tile after it, so labels and tables stay on the image's own grid:

- a number: that factor (pixels per image pixel; 2 doubles the nuclei);
- `auto`: from the image's median object diameter, measured by a first pass of the model (two
  samples of one step; the objects both find) on the central 512 x 512 pixels of level 0 (the
  middle plane of a 3D image; the whole of a 2D image of at most `WHOLE` pixels, such as a
  520 x 696 field), as Cellpose's size model does with a regression, against the
  model's training objects (`segment.object_diameter`, the median, and
  `object_diameter_range`, the 10th..90th percentile, in its config): inside that range no
  resampling, outside it resampled to the median (a study on DSB2018 fluorescence validation
  images, K = 4 without the consistency filter: AP@0.5 0.682 as they are, 0.729 all resampled
  to the median, 0.734 this way, 0.728 with larger ones only shrunk to the range's top).
  Fewer than `MIN_OBJECTS` whole objects there: factor 1. The factor is clipped to `LIMITS`
  and snapped to 1 within `SNAP`.

Every shard job of an image reads the same crop with the same seed, so they agree on the
factor; a whole-image run (batch jobs, the CLI: `stage.segment_image`) finds it once and hands
it to all the image's shards. The instance extraction's pixel parameters (smoothing, minimum
sizes) are in model pixels and are rescaled with it (`params_for`). The factor and how it was
found are recorded in the segment provenance as `scale`.

Where the first pass saw a whole image that is one tile, at factor 1 and one step, its two
samples are the stage's first two over that tile (each sample's noise is its own, keyed by
position and sample), so the stage draws only the other K - 2 (`Scale.first_samples`): on a
plate of 520 x 696 fields with the default K = 4 and the cell model, 8 network evaluations per
pixel instead of about 9.5 (issue 15).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import instances
from .represent import kind_channels

MIN_OBJECTS = 5
LIMITS = (0.25, 4.0)
SNAP = 0.15  # |ln factor| below this: 1 (within about 14% of the training size)
CROP = 512
# a 2D image of at most this many pixels is measured whole: the first pass's samples are then
# the first two of the segment stage's own over it (`Scale.first_samples`), not drawn again
WHOLE = 2 * CROP * CROP


@dataclasses.dataclass(frozen=True)
class Scale:
    factor: float
    method: str  # "fixed" (a number in the config) or "auto"
    measured_px: float | None = None  # the image's median object diameter (auto)
    model_px: float | None = None  # the model's training objects' median diameter
    # the first pass over a whole image: its network input and its samples (`first_samples`)
    first: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def asdict(self) -> dict:
        """The scale as the provenance records it (without the first pass's arrays)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}

    def first_samples(self, cond: np.ndarray, origins, steps: int) -> np.ndarray | None:
        """The first pass's samples where the model is about to draw them again: the same
        network input `cond` (a batch of the one whole image at its origin, not resampled) and
        one step, as the first pass draws. They are samples 0 and 1 of that draw (`predict`'s
        samples do not depend on how many there are). None anywhere else."""
        if self.first is None or steps != 1 or self.factor != 1:
            return None
        seen, samples = self.first
        if [tuple(o) for o in origins] != [(0,) * (cond.ndim - 2)] or cond.shape != seen.shape:
            return None
        return samples if np.array_equal(cond, seen) else None


def median_diameter(labels: np.ndarray) -> tuple[float | None, int]:
    """Median equivalent diameter (pixels, of a disc of the same area) of the objects that do
    not touch the border of (Y, X) `labels`, and how many there are (None when none)."""
    labels = np.asarray(labels)
    area = np.bincount(labels.ravel())
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    area[border] = 0
    area[0] = 0
    inner = area[area > 0]
    if inner.size == 0:
        return None, 0
    return math.sqrt(4 * float(np.median(inner)) / math.pi), int(inner.size)


def training_diameters(labels) -> tuple[float, float, float] | None:
    """A training set's object diameters: 10th, 50th and 90th percentile over every object of
    every label image (border objects included: training patches are cut from them), for
    `segment.object_diameter` (the median) and `segment.object_diameter_range` (the others)."""
    areas = [np.bincount(np.asarray(lab).ravel())[1:] for lab in labels]
    areas = np.concatenate([a[a > 0] for a in areas]) if areas else np.zeros(0)
    if not areas.size:
        return None
    p10, p50, p90 = np.percentile(np.sqrt(4 * areas / math.pi), [10, 50, 90])
    return round(float(p10), 2), round(float(p50), 2), round(float(p90), 2)


def central_crop(source, size: int = CROP) -> np.ndarray:
    """The central `size` x `size` pixels (y, x) of a (C, [Z,] Y, X) array or lazy view; a 3D
    image's middle plane; a 2D image of at most `WHOLE` pixels whole. Returns (C, y, x)
    float32."""
    *lead, y, x = source.shape[1:]
    if not lead and y * x <= WHOLE:
        size = max(y, x)
    y0, x0 = max((y - size) // 2, 0), max((x - size) // 2, 0)
    index = (slice(None), *[slice(n // 2, n // 2 + 1) for n in lead],
             slice(y0, y0 + min(size, y)), slice(x0, x0 + min(size, x)))  # fmt: skip
    block = np.asarray(source[index], np.float32)
    return block.reshape(block.shape[0], *block.shape[-2:])


def choose(value, model_px: float | None, first_pass=None, model_range=None) -> Scale:
    """The `Scale` for a `segment.scale` value: a positive number, or "auto" with
    `first_pass()` -> labels of the model's first pass over `central_crop`. With the model's
    `model_range` (its training objects' 10th..90th percentile diameters), an image whose
    objects are inside it is not resampled, any other is resampled to the model's median."""
    if value is None or value == 1:
        return Scale(1.0, "fixed")
    if value != "auto":
        f = float(value)
        if not f > 0:
            raise ValueError(f"segment.scale must be auto or a positive number, not {value!r}")
        return Scale(f, "fixed")
    if not model_px:
        return Scale(1.0, "auto (the model records no object_diameter)", None, None)
    measured, n = median_diameter(first_pass())
    if measured is None or n < MIN_OBJECTS:
        return Scale(1.0, f"auto (only {n} whole objects found)", measured, model_px)
    lo, hi = model_range or (model_px, model_px)
    target = measured if lo <= measured <= hi else model_px
    f = float(np.clip(target / measured, *LIMITS))
    f = 1.0 if abs(math.log(f)) < SNAP else round(f, 3)
    return Scale(f, "auto", round(measured, 2), round(float(model_px), 2))


def estimate(model, source, value, params: instances.Params, sampler="ddim", seed=0, pad=32):
    """`choose` for `model` (a `segment.model.Model`) on a (C, [Z,] Y, X) normalized image or
    lazy view: the first pass is two samples of one step over `central_crop`; the objects (by
    `params`) of the first that the second reproduces (IoU above `params.match_iou`), of the
    model's nuclei (or its first kind). On an empty image the model's specks are not
    reproduced (on BBBC039's one empty test image: none of 20), real nuclei are (65-100% on
    BBBC039 and DSB2018 validation images)."""
    from .model import predict, shard_channels

    seen = {}

    def first_pass():
        crop = central_crop(source)[: model.cond_channels]
        s = predict(model, crop[None], [(0, 0)], 2, 1, sampler, seed, pad=pad)
        if crop.shape[-2:] == tuple(source.shape[-2:]) and len(source.shape) == 3:
            seen["first"] = (crop[None], s)  # the whole image: the stage's first samples
        maps = shard_channels(s)[0]
        base = kind_channels(2) * (model.kinds.index("nuclei") if "nuclei" in model.kinds else 0)
        # both samples' objects under any ids: neither best_iou nor median_diameter reads them
        lab = instances.extract_unordered(maps[base + 3], maps[base + 5], params)
        other = instances.extract_unordered(maps[base + 4], maps[base + 6], params)
        kept = instances.best_iou(lab, other, int(lab.max())) > params.match_iou
        return np.where(np.concatenate([[False], kept])[lab], lab, 0)

    found = choose(value, model.diameter, first_pass, model.diameter_range)
    return dataclasses.replace(found, first=seen.get("first"))


def size_for(shape, factor: float) -> tuple[int, int]:
    """(y, x) of a (.., y, x) shape resampled by `factor` (at least 16 pixels each)."""
    return tuple(max(16, round(n * factor)) for n in shape[-2:])


def resample(batch: np.ndarray, size) -> np.ndarray:
    """(B, C, [Z,] Y, X) float32 resampled in y and x to `size`: bilinear, antialiased when
    shrinking (each z plane on its own)."""
    lead, yx = batch.shape[:-2], batch.shape[-2:]
    if tuple(yx) == tuple(size):
        return batch
    import torch  # here, not at the top: the gather (instance parameters) runs without torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).reshape(1, -1, *yx)
    shrink = size[0] < yx[0] or size[1] < yx[1]
    out = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False,
                        antialias=shrink)  # fmt: skip
    return out.reshape(*lead, *size).numpy()


def resampled(fn, batch: np.ndarray, origins, factor: float):
    """fn(batch, origins) on `batch` resampled by `factor` (origins scaled with it), its
    (B, C', [Z,] Y', X') result resampled back to the batch's own y and x."""
    if factor == 1:
        return fn(batch, origins)
    origins = [(*o[:-2], round(o[-2] * factor), round(o[-1] * factor)) for o in origins]
    out = fn(resample(batch, size_for(batch.shape, factor)), origins)
    return resample(out, batch.shape[-2:])


def resample_labels(labels: np.ndarray, size) -> np.ndarray:
    """(.., Y, X) integer labels resampled in y and x to `size` by nearest neighbour (pixel
    centres, as `resample`'s geometry); the dtype and the label values are kept."""
    labels = np.asarray(labels)
    yx = labels.shape[-2:]
    if tuple(yx) == tuple(size):
        return labels
    iy, ix = ((np.arange(m) + 0.5) * n / m for n, m in zip(yx, size))
    iy, ix = (np.minimum(i.astype(np.intp), n - 1) for i, n in zip((iy, ix), yx))
    return labels[..., iy[:, None], ix[None, :]]


def to_model_size(image, labels, model_px: float, model_range=None):
    """A training pair resampled as `choose` ("auto") would resample it at inference, with its
    own true `labels[0]` (Y, X) as the first pass: (image, labels, Scale). `image` (C, Y, X)
    is resampled bilinearly (`resample`), every label image by nearest neighbour; an image
    whose median whole-object diameter is inside `model_range` (or has fewer than
    `MIN_OBJECTS` whole objects) is returned as it is (tools/train_default_segment.py
    --normalise-scale)."""
    z = choose("auto", model_px, lambda: labels[0], model_range)
    if z.factor == 1:
        return image, labels, z
    size = size_for(np.shape(image), z.factor)
    image = resample(np.asarray(image, np.float32)[None], size)[0]
    return image, [resample_labels(lab, size) for lab in labels], z


def params_for(p: instances.Params, factor: float) -> instances.Params:
    """Instance parameters in model pixels for maps resampled back by `factor`; the samples'
    objects at full resolution where the image was resampled up (its objects are smaller than
    the training's: on DSB2018 a coarser grid lost some of them)."""
    if factor == 1:
        return p
    return dataclasses.replace(
        p,
        smooth=p.smooth / factor,
        min_size=max(1, round(p.min_size / factor**2)),
        min_seed=max(1, round(p.min_seed / factor**2)),
        consistency_grid=1 if factor > 1 else p.consistency_grid,
    )
