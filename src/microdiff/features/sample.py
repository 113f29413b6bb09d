"""One sample's stores (the workflow's `features` stage): every label layer of a segmentation
store measured on the sample's NGFF images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.segmentation import LABEL_KINDS, segmentation_layers
from ..tiling import axis_names
from .table import object_table, single_tile, whole


class _Stack:
    """Channels of several (C, [Z,] Y, X) arrays of one grid, read as one array."""

    def __init__(self, arrays):
        self.arrays = list(arrays)
        first = self.arrays[0].shape
        self.shape = (sum(a.shape[0] for a in self.arrays), *first[1:])
        self.ndim, self.dtype, self.chunks = len(self.shape), np.float32, None

    def __getitem__(self, key):
        c, *spatial = key
        parts = [np.asarray(a[(slice(None), *spatial)], np.float32) for a in self.arrays]
        return np.concatenate(parts)[c]


def measure_sample(
    segmentation,
    images: Sequence,
    sample: str,
    segments=None,
    tile=None,
    neighbor_distance: float = 2.0,
    texture_levels: int = 32,
    norm_json=None,
) -> pd.DataFrame:
    """The objects table of one sample: every label layer of `segmentation` (nuclei, cells).

    `images` are NGFF image stores on the label grid (raw first; with a second one, e.g. the
    restored image, its channels are measured too, named `restored_<channel>`); pixel size and
    channel names come from the first. `segments` is the segment stage's per-object table
    (`kind`, `id`, `uncertainty`), optional. Raises ValueError when an image is not on the
    label grid (a super-resolved restoration: measure on raw). With `norm_json` computed on
    flat-field corrected images, the raw image is measured corrected (`normalize.level0`).
    """
    from ..io.readers import open_image
    from ..normalize import Normalizer, level0

    norm = Normalizer.from_json(norm_json) if norm_json else None
    srcs = [open_image(p) for p in images]
    first = srcs[0]
    ndim = len(first.spatial_shape)
    arrays, names = [], []
    for i, src in enumerate(srcs):
        if src.src_axes != src.axes:
            raise ValueError(f"{src.path}: expected an NGFF image with axes {src.axes}")
        if src.spatial_shape != first.spatial_shape:
            raise ValueError(
                f"{src.path}: grid {src.spatial_shape} differs from {first.spatial_shape}; "
                "measure intensities on the raw image"
            )
        arrays.append(src.array if i or not norm_json else level0(src.path, norm))
        prefix = "" if i == 0 else f"{Path(src.path).name.split('.')[0]}_"
        names += [f"{prefix}{c}" for c in src.channel_names]
    image = arrays[0] if len(arrays) == 1 else _Stack(arrays)
    spacing = [first.scale.get(a) for a in axis_names(ndim)]
    pixel_size = None if any(s is None for s in spacing) else spacing
    table = None if segments is None else pd.DataFrame(segments)
    frames = []
    layers = segmentation_layers(segmentation, ndim)
    if layers and all(single_tile(la["labels"], tile) for la in layers.values()):
        image = whole(image)  # one tile: read (and correct) the image once for all layers
    for name, layer in layers.items():
        if layer["labels"].shape != first.spatial_shape:
            raise ValueError(
                f"{segmentation}: labels/{name} grid {layer['labels'].shape} differs from the "
                f"image grid {first.spatial_shape}"
            )
        kind = LABEL_KINDS.get(name, name)
        per_object = None
        if table is not None and {"kind", "id", "uncertainty"} <= set(table.columns):
            rows = table[table["kind"].isin([name, kind])]
            per_object = rows[["id", "uncertainty"]] if len(rows) else None
        frames.append(
            object_table(
                layer["labels"],
                image,
                sample=sample,
                channel_names=names,
                pixel_size=pixel_size,
                uncertainty=layer["uncertainty"],
                object_uncertainty=per_object,
                tile=tile,
                neighbor_distance=neighbor_distance,
                texture_levels=texture_levels,
                kind=kind,
            )
        )
    if not frames:
        raise ValueError(f"{segmentation}: no label layers under labels/")
    return pd.concat(frames, ignore_index=True)
