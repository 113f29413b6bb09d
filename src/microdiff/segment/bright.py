"""Cells on a bright background (brightfield blood smears): threshold + watershed.

A named non-diffusion option (`segment.method: bright`): no model fits stained red blood cells
on a bright background yet, so this is the classical pipeline, and the stage records it as
non-diffusion in provenance and in its log. Per image (or tile): darkness = minus the chosen
channel (default: green for RGB, the channel mean otherwise), Gaussian-smoothed; foreground =
darkness above Otsu's threshold with holes filled (pale cell centres stay inside their cell) and
small specks removed; touching cells are split by a watershed of the distance transform seeded at
its local maxima.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

METHOD = "threshold + watershed (bright background, non-diffusion)"


@dataclass(frozen=True)
class BrightParams:
    channel: int | None = None  # None: green (index 1) of 3 channels, else the channel mean
    smooth: float = 1.0  # Gaussian sigma (pixels) before thresholding
    min_size: int = 80  # pixels: smaller foreground specks are dropped
    footprint: int = 15  # pixels: window of the distance maxima that seed cells
    min_radius: float = 5.0  # pixels: a seed's distance to the background is at least this

    def asdict(self) -> dict:
        return asdict(self)


def darkness(image: np.ndarray, params: BrightParams = BrightParams()) -> np.ndarray:
    """(Y, X) float32: high where the (C, Y, X) image is dark."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        plane = image
    elif params.channel is not None:
        plane = image[params.channel]
    elif image.shape[0] == 3:
        plane = image[1]
    else:
        plane = image.mean(axis=0)
    return -ndi.gaussian_filter(plane, params.smooth)


def segment_bright(image: np.ndarray, params: BrightParams = BrightParams()) -> np.ndarray:
    """(Y, X) int32 instance labels (0 background) of dark objects on a bright (C, Y, X) or
    (Y, X) image. A constant image has no objects."""
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    dark = darkness(image, params)
    if float(dark.max() - dark.min()) <= 0:
        return np.zeros(dark.shape, np.int32)
    fg = ndi.binary_fill_holes(dark > threshold_otsu(dark))
    fg = remove_small_objects(fg, max_size=params.min_size)
    dist = ndi.distance_transform_edt(fg)
    peaks = (dist == ndi.maximum_filter(dist, size=params.footprint)) & (dist > params.min_radius)
    markers, _ = ndi.label(ndi.binary_dilation(peaks, iterations=2))
    return watershed(-dist, markers, mask=fg).astype(np.int32)
