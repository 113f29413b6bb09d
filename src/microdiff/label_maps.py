"""Dense maps of instance labels: the representation the segment model generates and the
generate model is conditioned on.

Two channels, both in [-1, 1]:

    fg    foreground (1 inside any object, -1 outside)
    dist  per-object normalized distance to the object's own border: 0 on the border, 1 at the
          object's deepest pixel (mapped to [-1, 1]; -1 on background)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """The pixels of each object with a face neighbour (4-connected in 2D, 6 in 3D) outside it:
    skimage's `find_boundaries(labels, mode="inner")` (the image's edge is no boundary), by one
    comparison of neighbours per axis instead of a grey dilation and erosion (about 9x faster
    on a montage's crops)."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        head = (slice(None),) * axis + (slice(1, None),)
        tail = (slice(None),) * axis + (slice(None, -1),)
        diff = labels[head] != labels[tail]
        edge[head] |= diff
        edge[tail] |= diff
    return edge & (labels != 0)


def representation(labels: np.ndarray) -> np.ndarray:
    """Instance labels ([Z,] Y, X) -> (2, [Z,] Y, X) float32 target in [-1, 1] (fg, dist)."""
    labels = np.asarray(labels)
    fg = labels > 0
    inner = fg & ~inner_boundaries(labels)
    d = ndi.distance_transform_edt(inner).astype(np.float32)
    d[fg] += 1.0  # border pixels get 1, so every object pixel is above 0
    ids = np.unique(labels[fg])
    peak = np.zeros(int(labels.max()) + 1, np.float32)
    if len(ids):
        peak[ids] = np.asarray(ndi.maximum(d, labels, ids), np.float32)
    norm = np.where(fg, d / np.maximum(peak[labels], 1.0), 0.0)
    return np.stack([fg * 2.0 - 1.0, norm * 2.0 - 1.0]).astype(np.float32)
