"""Training patches from zarr (or numpy) arrays through the shared tiling module.

A patch source has `sample(n, rng) -> (x0, cond)`: `n` patches as float32 tensors
(n, C, [Z,] Y, X), cond None or (n, Cc, ...), drawn with the numpy Generator `rng` only, so a
training run that owns the rng (seeded per step) is repeatable and resumable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..provenance import stable_hash
from ..tiling import Box, read_box, sample_patch_boxes


def _describe(a) -> dict:
    d = {"shape": list(a.shape), "dtype": str(a.dtype)}
    if isinstance(a, np.ndarray):
        d["sha256"] = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
    else:
        store = getattr(a, "store", None)
        d["store"] = str(getattr(store, "root", store))
        d["path"] = str(getattr(a, "path", ""))
    return d


class ZarrPatchSource:
    """Random patches of spatial size `patch` from arrays of layout (C, [Z,] Y, X).

    An array is picked with probability proportional to its spatial size, a box by
    `tiling.sample_patch_boxes`, and read with `tiling.read_box`. Then:

    - `reader(array_index, box) -> (target, cond)` replaces the default read entirely (e.g. a
      paired noisy/clean read from two arrays); otherwise the patch is split into
      `target_channels` (default: all) and `cond_channels` (default: none);
    - `transform(target, cond, rng) -> (target, cond)` (augmentation);
    - `cond_fn(target, rng) -> cond` makes the condition from the target (e.g. a degraded copy).

    `data_hash` identifies the data (content hash for numpy arrays, store + shape for zarr).
    Iterating yields batches of `batch` forever from `seed`.
    """

    def __init__(
        self,
        arrays: Sequence,
        patch,
        cond_fn: Callable | None = None,
        transform: Callable | None = None,
        seed: int = 0,
        target_channels: Sequence[int] | None = None,
        cond_channels: Sequence[int] | None = None,
        reader: Callable[[int, Box], tuple] | None = None,
        batch: int = 8,
    ):
        self.arrays = list(arrays)
        if not self.arrays:
            raise ValueError("ZarrPatchSource needs at least one array")
        self.patch, self.cond_fn, self.transform = patch, cond_fn, transform
        self.target_channels, self.cond_channels = target_channels, cond_channels
        self.reader, self.seed, self.batch = reader, seed, batch
        sizes = np.array([float(np.prod(a.shape[1:])) for a in self.arrays])
        self.p = sizes / sizes.sum()
        self.data_hash = stable_hash(
            {
                "arrays": [_describe(a) for a in self.arrays],
                "patch": patch,
                "target_channels": target_channels,
                "cond_channels": cond_channels,
            }
        )

    def _one(self, rng: np.random.Generator):
        k = int(rng.choice(len(self.arrays), p=self.p))
        box = sample_patch_boxes(self.arrays[k].shape[1:], self.patch, 1, rng)[0]
        if self.reader is not None:
            target, cond = self.reader(k, box)
        else:
            data = read_box(self.arrays[k], box)
            target = data if self.target_channels is None else data[list(self.target_channels)]
            cond = None if self.cond_channels is None else data[list(self.cond_channels)]
        target = np.asarray(target, dtype=np.float32)
        cond = None if cond is None else np.asarray(cond, dtype=np.float32)
        if self.transform is not None:
            target, cond = self.transform(target, cond, rng)
        if self.cond_fn is not None:
            cond = np.asarray(self.cond_fn(target, rng), dtype=np.float32)
        return target, cond

    def sample(self, n: int, rng: np.random.Generator):
        pairs = [self._one(rng) for _ in range(n)]
        x0 = torch.from_numpy(np.stack([t for t, _ in pairs]))
        if pairs[0][1] is None:
            return x0, None
        return x0, torch.from_numpy(np.stack([c for _, c in pairs]))

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            yield self.sample(self.batch, rng)


def random_flips(target, cond, rng):
    """Augmentation: the same random flips of every spatial axis for target and cond."""
    for ax in range(1, target.ndim):
        if rng.random() < 0.5:
            target = np.flip(target, ax)
            cond = None if cond is None else np.flip(cond, ax)
    return np.ascontiguousarray(target), None if cond is None else np.ascontiguousarray(cond)
