"""NGFF 0.4 label images: `labels/` group beside an image, each label a multiscale int32 image
with `image-label` metadata and a nearest-neighbour pyramid.

Label arrays have the image's spatial axes only ((z,) y, x): one label value per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import zarr

from ..tiling import axis_names
from .ngff import BAND_PIXELS, NGFF_VERSION, create_levels, iter_bands, multiscales, store_like


def label_chunks(shape: Sequence[int], target_bytes: int = 1 << 20) -> tuple[int, ...]:
    """Chunks for an int32 label array: square-ish y/x edges, up to 16 planes in 3D."""
    zc = (min(shape[0], 16),) if len(shape) == 3 else ()
    edge = int(2 ** np.floor(np.log2(np.sqrt(target_bytes / 4 / (zc[0] if zc else 1)))))
    return (*zc, min(edge, shape[-2]), min(edge, shape[-1]))


def create_labels(
    image_group: zarr.Group,
    names: Sequence[str],
    shape: Sequence[int],
    scale: dict[str, float] | None = None,
    chunks: Sequence[int] | None = None,
    attrs: dict | None = None,
) -> dict[str, zarr.Group]:
    """Create `labels/<name>` for each name under an NGFF image group; returns the groups."""
    shape = tuple(int(s) for s in shape)
    axes = "".join(axis_names(len(shape)))
    chunks = tuple(chunks) if chunks else label_chunks(shape)
    root = image_group.require_group("labels")
    root.attrs["labels"] = list(names)
    out = {}
    for name in names:
        g = root.create_group(name, overwrite=True)
        n_levels = create_levels(g, shape, np.int32, chunks)
        g.attrs.update(
            {
                "multiscales": multiscales(name, axes, scale, n_levels, "nearest"),
                "image-label": {"version": NGFF_VERSION, "source": {"image": "../../"}},
                **(attrs or {}),
            }
        )
        out[name] = g
    return out


def fill_label_pyramid(group: zarr.Group, max_pixels: int = BAND_PIXELS // 4, level0=None) -> None:
    """Levels 1.. from level 0 by nearest neighbour (every second pixel), block by block (chunk
    rows in y, whole chunks in x: memory bounded by `max_pixels` of the level below x 4).
    `level0`: level 0's labels where the caller holds them (a small image): it is written as
    level 0, and each level is every second pixel of the one before in memory, written whole,
    not read back (issue 15); the same values."""
    k, prev = 1, None if level0 is None else np.asarray(level0)
    if prev is not None:
        group["0"][...] = prev
    while prev is not None and str(k) in group:
        prev = prev[..., ::2, ::2]
        group[str(k)][...] = prev
        k += 1
    while str(k) in group:
        src, dst = group[str(k - 1)], group[str(k)]
        for _, sl in iter_bands((1, *dst.shape), (1, *dst.chunks), max_pixels):
            yx = [slice(2 * s.start, 2 * s.stop, 2) for s in sl[-2:]]
            dst[sl] = np.asarray(src[(*sl[:-2], *yx)])
        k += 1


def set_colors(group: zarr.Group, ids: np.ndarray, seed: int = 0) -> None:
    """Give each label id a stable pseudo-random colour (kept small: up to 5000 ids)."""
    ids = np.asarray(ids)[:5000]
    rng = np.random.default_rng(seed)
    rgba = rng.integers(40, 256, size=(len(ids), 3))
    meta = dict(group.attrs["image-label"])
    meta["colors"] = [
        {"label-value": int(i), "rgba": [int(r), int(g), int(b), 255]}
        for i, (r, g, b) in zip(ids, rgba)
    ]
    group.attrs["image-label"] = meta


def validate_labels(image_path) -> list[str]:
    """Validate the labels group and every label image with ome-zarr-models; returns names."""
    from ome_zarr_models.v04.image_label import ImageLabel
    from ome_zarr_models.v04.labels import Labels

    root = zarr.open_group(store_like(image_path), mode="r")
    try:
        labels = root["labels"]
        Labels.from_zarr(labels)
        names = list(labels.attrs["labels"])
        for name in names:
            ImageLabel.from_zarr(labels[name])
    except Exception as err:  # pydantic and value errors alike
        raise ValueError(f"{image_path}: NGFF labels do not validate: {err}") from err
    return names
