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

import math
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


def params_from(seg: dict) -> BrightParams:
    """`segment.bright` of the config (keys of `BrightParams`; unknown keys are an error)."""
    given = dict(seg.get("bright") or {})
    unknown = set(given) - set(BrightParams.__dataclass_fields__)
    if unknown:
        raise ValueError(f"segment.bright: unknown keys {sorted(unknown)}")
    return BrightParams(**given)


def bright_stage(image, out, table, norm_json=None, params: dict | None = None,
                 inputs: dict | None = None) -> dict:  # fmt: skip
    """`segmentation.ome.zarr` (channel `cells_fg`, `labels/cells`) and `segments.parquet` of
    one 2D image by `segment_bright`, read whole (smears are small images). Provenance and log
    say the method is not diffusion; objects have no uncertainty (NaN)."""
    import logging

    import pandas as pd
    import zarr

    from .. import provenance
    from ..atomic import atomic_output
    from ..io import ngff
    from ..io.labels import create_labels, fill_label_pyramid, set_colors
    from ..normalize import Normalizer, level0
    from ..provenance import write_table

    log = logging.getLogger("microdiff.segment")
    bp = params_from(params or {})
    src = zarr.open_group(str(image), mode="r")
    norm = Normalizer.from_json(norm_json) if norm_json else None
    arr = level0(src, norm)
    if len(arr.shape) != 3:
        raise ValueError(f"{image}: segment.method bright segments 2D images, not {arr.shape}")
    shape = tuple(arr.shape[1:])
    scale = ngff.level0_scale(src)
    log.warning("cells by %s: no diffusion model is used for this stage", METHOD)
    lab = segment_bright(np.asarray(arr[:]), bp)
    ids = np.unique(lab[lab > 0])
    prov = provenance.record("segment", params, inputs=inputs or {"image": str(image)},
                             method={"cells": METHOD}, bright=bp.asdict(),
                             channels=["cells_fg"])  # fmt: skip
    small = math.prod(shape) <= ngff.BAND_PIXELS  # assembled in memory, written in one pass
    with atomic_output(out) as tmp, ngff.assembled(tmp, small) as target:
        group = ngff.create_image(target, (1, *shape), np.float32, "cyx", scale, ["cells_fg"],
                                  attrs={"microdiff": prov}, name="segmentation")  # fmt: skip
        group["0"][0] = (lab > 0).astype(np.float32)
        labs = create_labels(group, ["cells"], shape, scale, attrs={"microdiff": prov})
        labs["cells"]["0"][:] = lab
        ngff.fill_pyramid(group)
        ngff.set_display_windows(group)
        fill_label_pyramid(labs["cells"])
        set_colors(labs["cells"], ids)
    area = np.bincount(lab.ravel())[ids] if len(ids) else np.zeros(0, int)
    cen = ndi.center_of_mass(np.ones(shape), lab, ids) if len(ids) else []
    cen = np.asarray(cen, float).reshape(-1, 2)
    objects = pd.DataFrame({"kind": "cells", "id": ids.astype(np.int32),
                            "centroid_y": cen[:, 0], "centroid_x": cen[:, 1],
                            "area": area.astype(np.int64), "probability": 1.0,
                            "uncertainty": np.nan, "consistency": np.nan})  # fmt: skip
    objects["nucleus_id"] = 0
    write_table(table, objects, prov)
    log.info("cells: %d objects", len(ids))
    return {"objects": {"cells": len(ids)}, "methods": {"cells": METHOD}}
