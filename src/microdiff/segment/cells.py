"""Cells without a cell model: the non-diffusion fallback for a nuclei-only model.

Each cell grows from its nucleus (cell id = nucleus id) over the smoothed cytoplasm channel
where it is above a threshold chosen for the image, never further than `cell_max_distance`
pixels from a nucleus, by a seeded watershed on the distance from the nuclei (the nearest
nucleus wins, as CellProfiler's propagation does on an even stain). Holes are filled by
`instances.cells_from`, which makes the diffusion cells too.

The threshold (`segment.cell_threshold: auto`) is taken from the whole image's histogram of the
smoothed, normalized cytoplasm (read tile by tile, so memory stays bounded): a quarter of the way
from the background level (the median below Otsu's threshold) up to Otsu's threshold. A number
is used as is (normalized units). On the simulator's cytoplasm (cells of uneven brightness, a
sixth of them dim; four 512 x 512 images, true nuclei as seeds) AP@0.5 is 0.81 at a quarter,
0.67 halfway and 0.52 at Otsu's threshold: the dim cells and the faint cell edges sit below it.
A tenth of the way scored 0.92 there, but sits too close to the background of an unevenly lit
real image. The old fixed 0.15 sat on the background and made a web of fragments (0.08).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from .instances import Window

log = logging.getLogger("microdiff.segment")
SMOOTH = 1.5  # Gaussian sigma (pixels) of the cytoplasm before thresholding
BINS = 512
RANGE = (-0.5, 1.5)  # normalized units the histogram covers (values outside are clipped)
FRACTION = 0.25  # the threshold's place from the background (0) to Otsu's threshold (1)


def smoothed(source, box) -> np.ndarray:
    """The normalized cytoplasm of `box` (`source`: a one-channel NormalizedChannels), smoothed."""
    return ndi.gaussian_filter(source[(slice(None), *box.slices)][0], SMOOTH)


def auto_threshold(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float, float]:
    """(threshold, otsu, background) from a histogram of the smoothed cytoplasm."""
    from skimage.filters import threshold_otsu

    centres = (edges[:-1] + edges[1:]) / 2
    if counts.sum() == 0 or np.count_nonzero(counts) < 2:
        return float(centres[-1]), float(centres[-1]), float(centres[0])
    otsu = float(threshold_otsu(hist=(counts, centres)))
    below = np.cumsum(np.where(centres < otsu, counts, 0))
    background = float(centres[np.searchsorted(below, below[-1] / 2)])
    return background + FRACTION * (otsu - background), otsu, background


def image_threshold(source, cores: Sequence, value="auto") -> dict:
    """The cytoplasm threshold of one image: `value` when a number, else `auto_threshold` over
    the histogram of every tile core. Returns {threshold, method, otsu, background}."""
    if value not in (None, "auto"):
        return {"threshold": float(value), "method": "fixed"}
    counts = np.zeros(BINS, np.int64)
    edges = np.linspace(*RANGE, BINS + 1)
    for core in cores:
        img = np.clip(smoothed(source, core), *RANGE)
        counts += np.histogram(img, edges)[0]
    t, otsu, bg = auto_threshold(counts, edges)
    log.info("fallback cells: cytoplasm threshold %.3f (Otsu %.3f, background %.3f)", t, otsu, bg)
    method = f"auto ({FRACTION:g} of the way from background to Otsu)"
    return {"threshold": t, "method": method, "otsu": otsu, "background": bg}


def fallback_window(source, box, nuclei: np.ndarray, threshold: float):
    """The fallback's maps in `box`: foreground (cytoplasm above the threshold, and the nuclei)
    and a "distance" that falls with the distance from the nuclei, so the watershed of
    `instances.cells_from` (which also caps the reach) lets the nearest nucleus win."""
    img = smoothed(source, box)
    far = ndi.distance_transform_edt(nuclei == 0) if nuclei.any() else np.full(img.shape, np.inf)
    prob = ((img > threshold) | (nuclei > 0)).astype(np.float32)
    return Window(prob, np.zeros_like(prob), (1.0 / (1.0 + far)).astype(np.float32), [])
