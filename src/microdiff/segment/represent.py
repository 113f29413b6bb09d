"""Training pairs for the segmentation model: per object kind (nuclei, cells) the two channels
of `label_maps.representation` (fg, dist) as the target, the normalized image as the condition.

Touching objects are separated by the distance map (it drops to 0 where they meet), so a seeded
watershed on it (seeds where dist > 0.5) recovers instances; see `instances`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..label_maps import representation
from ..provenance import stable_hash

KINDS = ("nuclei", "cells")


def kind_channels(samples: int) -> int:
    """A kind's channels in a segment shard store (`model.shard_channels`): its probability,
    uncertainty and mean dist, then the `samples` samples' fg and their dist."""
    return 3 + 2 * samples


class PairSource:
    """Random training patches (target, cond) from (image, labels) pairs held in memory.

    images: list of (C, Y, X) normalized float arrays (any size; smaller than the patch are
    padded); labels: per image a list of label arrays (Y, X), one per kind. 3D pairs are cut
    into their z slices (the model is slice-wise). Augmentation: flips, 90-degree rotations,
    intensity scale/offset/gamma jitter and noise on the condition; optionally (a generalist
    model) a random zoom by a factor log-uniform in `scale` (a square of patch / factor pixels
    resampled to the patch), a Gaussian blur of the condition (sigma uniform in 0..`blur`, half
    the patches) and noise of a std log-uniform in 0.005..`noise` instead of a fixed one.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[Sequence[np.ndarray]],
        patch: int = 128,
        augment: bool = True,
        scale: tuple[float, float] = (1.0, 1.0),
        blur: float = 0.0,
        noise: float | None = None,
    ):
        self.patch, self.augment = int(patch), augment
        self.scale, self.blur, self.noise = (float(scale[0]), float(scale[1])), blur, noise
        self.data = []
        for img, labs in zip(images, labels):
            img = np.asarray(img, np.float32)
            labs = [np.asarray(lab) for lab in labs]
            if labs[0].ndim == 3:  # slice-wise: every z plane is a 2D pair
                for z in range(labs[0].shape[0]):
                    self._add(img[:, z], [lab[z] for lab in labs])
            else:
                self._add(img, labs)
        if not self.data:
            raise ValueError("no training pairs")
        sizes = np.array([float(np.prod(t.shape[1:])) for t, _ in self.data])
        self.p = sizes / sizes.sum()
        import hashlib

        h = hashlib.sha256()
        for t, c in self.data:
            h.update(np.ascontiguousarray(c[:, ::7, ::7]).tobytes())
            h.update(np.ascontiguousarray(t[:, ::7, ::7]).tobytes())
        self.data_hash = h.hexdigest()[:16]

    def _add(self, img, labs):
        target = np.concatenate([representation(lab) for lab in labs]).astype(np.float16)
        pad = [(0, 0)] + [(0, max(0, self.patch - n)) for n in img.shape[1:]]
        if any(p[1] for p in pad):
            img = np.pad(img, pad, mode="reflect")
            target = np.pad(target, pad, mode="constant", constant_values=-1)
        self.data.append((target, img.astype(np.float32)))

    def sample(self, n: int, rng: np.random.Generator):
        import torch

        ts, cs = [], []
        for _ in range(n):
            t, c = self.data[int(rng.choice(len(self.data), p=self.p))]
            side = self.patch
            if self.augment and self.scale != (1.0, 1.0):
                zoom = float(np.exp(rng.uniform(*np.log(self.scale))))
                side = max(8, min(round(self.patch / zoom), *t.shape[1:]))
            y = int(rng.integers(0, t.shape[1] - side + 1))
            x = int(rng.integers(0, t.shape[2] - side + 1))
            sl = (slice(None), slice(y, y + side), slice(x, x + side))
            t, c = t[sl].astype(np.float32), c[sl].copy()
            if side != self.patch:
                t, c = resize(t, self.patch), resize(c, self.patch)
            if self.augment:
                t, c = augment(t, c, rng, self.blur, self.noise)
            ts.append(t)
            cs.append(c)
        return torch.from_numpy(np.stack(ts)), torch.from_numpy(np.stack(cs))


def resize(block: np.ndarray, side: int) -> np.ndarray:
    """(C, Y, X) -> (C, side, side), bilinear (a zoomed training patch)."""
    from skimage.transform import resize as sk_resize

    out = sk_resize(block, (block.shape[0], side, side), order=1, mode="reflect",
                    anti_aliasing=side < block.shape[1])  # fmt: skip
    return out.astype(np.float32)


def augment(
    target: np.ndarray,
    cond: np.ndarray,
    rng: np.random.Generator,
    blur: float = 0.0,
    noise: float | None = None,
):
    """Flips and a 90-degree rotation (the engine's `augment`), intensity jitter of the
    condition (per channel); with `blur` a Gaussian blur (sigma up to `blur`) of half the
    conditions; noise of std 0.02, or log-uniform in 0.005..`noise` when given."""
    from ..diffusion.augment import augment as flip_rotate

    target, cond = flip_rotate(target, rng, cond)
    cond = cond.astype(np.float32, copy=False)
    for c in range(cond.shape[0]):
        gamma = float(np.exp(rng.normal(0, 0.2)))
        ch = np.clip(cond[c], 0, None) ** gamma
        cond[c] = ch * float(np.exp(rng.normal(0, 0.2))) + float(rng.normal(0, 0.05))
    if blur > 0 and rng.random() < 0.5:
        from scipy.ndimage import gaussian_filter

        cond = gaussian_filter(cond, (0, *[float(rng.uniform(0, blur))] * (cond.ndim - 1)))
    std = 0.02 if noise is None else float(np.exp(rng.uniform(np.log(0.005), np.log(noise))))
    cond += rng.normal(0, std, cond.shape).astype(np.float32)
    return target, cond


class MixedSource:
    """A patch source drawing each patch from `synthetic` with probability `ratio`, else from
    `real` (both with `sample(n, rng)`), so the mixing ratio holds whatever the data sizes."""

    def __init__(self, real, synthetic, ratio: float):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], not {ratio}")
        self.real, self.synthetic, self.ratio = real, synthetic, float(ratio)
        self.data_hash = stable_hash(
            [getattr(real, "data_hash", None), getattr(synthetic, "data_hash", None), ratio]
        )

    def sample(self, n: int, rng: np.random.Generator):
        import torch

        k = int(rng.binomial(n, self.ratio))
        parts = []
        if n - k:
            parts.append(self.real.sample(n - k, rng))
        if k:
            parts.append(self.synthetic.sample(k, rng))
        x0 = torch.cat([a for a, _ in parts])
        cond = None if parts[0][1] is None else torch.cat([c for _, c in parts])
        return x0, cond
