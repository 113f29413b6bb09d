"""Seeds of the instance extraction: the h-maxima of a distance map above a level, computed
region by region (`segment.instances` seeds its watershed with them)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import reconstruction


def h_maxima(d: np.ndarray, h: float, level: float) -> np.ndarray:
    """skimage.morphology.h_maxima(d, h) (as bool) above `level`, for d >= 0: the same pixels,
    without a grey reconstruction of the image (`low`: the least marker, d - h as h_maxima
    computes it, of a pixel above `level`; one only where `low` <= 0).

    h_maxima keeps p where d(p) - rec(p) >= h, rec the reconstruction of the marker m (d - h
    less a rounding margin) under d; rec(p) >= m(p) >= `low` > 0 for p above `level`.
    - Only p's region (8-connected, of d > `low`) matters: rec(p) is the largest min(m(q), d
      along a path q..p), and a path through a pixel where d <= `low` gives at most `low`.
    - p is not kept when a neighbour r has d(r) > d(p) + `tol` (rec(p) >= min(m(r), d(p)),
      and m(r) exceeds d(p) - h by more than rounding): only near-local maxima are candidates.
    - A candidate whose m is its region's largest has rec(p) = m(p) (rec only selects values of
      m, none above it reaches p). Most regions have one peak.
    - Any other candidate is kept when no pixel joined to it through d > x has m above x, x the
      largest value for which d(p) - x >= h (a labelling of its region's box per candidate)."""
    out = np.zeros(d.shape, bool)
    if h > np.ptp(d):  # h_maxima finds none
        return out
    marker = d - h - 2 * np.finfo(d.dtype).resolution * np.abs(d)
    above = d > level
    if not above.any():
        return out
    low = marker[above].min()
    if not low > 0:  # a candidate reached through zeros: the whole image
        rec = reconstruction(marker, d, method="dilation")
        return ((d - rec) >= h) & above
    regions, n = ndi.label(d > low, ndi.generate_binary_structure(d.ndim, d.ndim))
    tol = 32 * np.finfo(d.dtype).resolution * float(np.abs(d).max())
    peak = np.flatnonzero((regions > 0) & (d >= ndi.maximum_filter(d, 3) - tol))
    # each region's largest marker is at one of its near-local maxima: a neighbour higher by
    # more than `tol` has the larger marker, and is in the same region
    top = np.full(n + 1, -np.inf)
    np.maximum.at(top, regions.ravel()[peak], marker.ravel()[peak])
    cand = peak[above.ravel()[peak]]
    lab = regions.ravel()[cand]
    mk = marker.ravel()[cand]
    sure = mk >= top[lab]
    out.ravel()[cand[sure]] = (d.ravel()[cand[sure]] - mk[sure]) >= h  # rec = m there
    if sure.all():
        return out
    # the rest: rec(p) > x, for x the largest value with d(p) - x >= h as numpy computes it,
    # when and only when a pixel q with m(q) > x is joined to p through pixels where d > x:
    # then min(m(q), d along the path) > x; otherwise no q and path give more than x
    todo = cand[~sure]
    top_ok = _largest_below(d.ravel()[todo], h)
    full = ndi.generate_binary_structure(d.ndim, d.ndim)
    boxes = ndi.find_objects(regions)
    for p, x, i in zip(todo, top_ok, lab[~sure]):
        sl = boxes[i - 1]
        crop = d[sl]
        joined, _ = ndi.label(crop > x, full)
        at = np.unravel_index(p, d.shape)
        local = tuple(int(c) - s.start for c, s in zip(at, sl))
        out[at] = marker[sl][joined == joined[local]].max() <= x
    return out


def _largest_below(dp: np.ndarray, h: float) -> np.ndarray:
    """For each value v of `dp`, the largest x of its dtype with (v - x) >= h, as numpy
    computes that test (x moves by one representable step at a time from v - h)."""
    x = (dp - h).astype(dp.dtype)
    while (bad := ~((dp - x) >= h)).any():
        x = np.where(bad, np.nextafter(x, -np.inf), x)
    while (up := (dp - (nx := np.nextafter(x, np.inf))) >= h).any():
        x = np.where(up, nx, x)
    return x
