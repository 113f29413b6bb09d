"""The engine's one augmentation of training patches: the dihedral group of the last two axes."""

from __future__ import annotations

import numpy as np


def augment(patch: np.ndarray, rng: np.random.Generator, cond: np.ndarray | None = None):
    """Random flips of the last two axes and, where they are of one length, a random quarter
    turn: the same for `patch` and `cond` (e.g. an image and its condition). Returns the patch,
    or (patch, cond) when `cond` is given, contiguous."""
    flip_y, flip_x = rng.random() < 0.5, rng.random() < 0.5
    k = int(rng.integers(4)) if patch.shape[-1] == patch.shape[-2] else 0
    out = []
    for a in (patch, cond):
        if a is not None:
            a = a[..., ::-1, :] if flip_y else a
            a = a[..., ::-1] if flip_x else a
            out.append(np.ascontiguousarray(np.rot90(a, k, axes=(-2, -1))))
    return out[0] if cond is None else tuple(out)
