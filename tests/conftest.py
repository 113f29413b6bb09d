"""Shared test helpers: small images written in every input format the readers take."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

try:  # keep the 2-core CI machine responsive when torch is in use
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


def write_image(path, data: np.ndarray, fmt: str, axes: str = "cyx", pixel_size: float = 0.5):
    """Write `data` (layout `axes`) as fmt: tiff, ome-tiff, zarr or ome-zarr. Returns the path."""
    path = str(path)
    if fmt == "tiff":
        tifffile.imwrite(path, data, photometric="minisblack")
    elif fmt == "ome-tiff":
        meta = {"axes": axes.upper(), "PhysicalSizeX": pixel_size, "PhysicalSizeY": pixel_size}
        if "z" in axes:
            meta["PhysicalSizeZ"] = 2 * pixel_size
        tifffile.imwrite(path, data, ome=True, metadata=meta)
    elif fmt == "zarr":
        arr = zarr.create_array(
            path, shape=data.shape, dtype=data.dtype, dimension_names=list(axes)
        )
        arr[:] = data
    elif fmt == "ome-zarr":
        from microdiff.io import ngff

        group = ngff.create_image(
            path, data.shape, data.dtype, axes, {"y": pixel_size, "x": pixel_size}
        )
        group["0"][:] = data
        ngff.fill_pyramid(group)
    else:
        raise ValueError(fmt)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
