"""Quantile binning shared by the noise measurements (report noise curves, restore noise model)."""

from __future__ import annotations

import numpy as np


def bin_index(values: np.ndarray, edges: np.ndarray, dtype=np.int16) -> np.ndarray:
    """The bin of each value between sorted `edges`: `clip(searchsorted(edges, values, "right")
    - 1, 0, len(edges) - 2)`, the same numbers, as the count of inner edges at or below each
    value (a few comparisons over the values beat a binary search per value: 4 M values into
    40 bins, 0.06 s against 0.14). Values or edges with NaN take the search itself."""
    values = np.asarray(values)
    if np.isnan(edges).any() or (values.size and np.isnan(values.max())):  # max: NaN if any
        index = np.searchsorted(edges, values, side="right") - 1
        return np.clip(index, 0, len(edges) - 2).astype(dtype)
    which = np.zeros(values.shape, dtype)
    for e in edges[1:-1]:
        which += values >= e
    return which
