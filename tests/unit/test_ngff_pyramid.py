"""Pyramid levels from level 0 in memory (issue 15) equal those read back band by band."""

import numpy as np
import pytest

from microdiff.io import ngff


@pytest.mark.parametrize("shape", [(2, 37, 51), (1, 3, 21, 18)])
def test_pyramid_from_memory_equals_band_by_band(tmp_path, monkeypatch, shape):
    monkeypatch.setattr(ngff, "BAND_PIXELS", 64)  # many bands, some cut by odd edges
    monkeypatch.setattr(ngff, "MIN_PYRAMID", 8)
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    axes = "czyx" if len(shape) == 4 else "cyx"
    chunks = (1, *[4] * (len(shape) - 1))
    a = ngff.create_image(tmp_path / "a.zarr", shape, np.float32, axes, chunks=chunks)
    b = ngff.create_image(tmp_path / "b.zarr", shape, np.float32, axes, chunks=chunks)
    a["0"][...] = data
    b["0"][...] = data
    ngff.fill_pyramid(a)
    ngff.fill_pyramid(b, level0=data)
    levels = sorted(k for k, _ in a.arrays())
    assert len(levels) > 1
    for k in levels:
        np.testing.assert_array_equal(a[k][...], b[k][...], err_msg=k)
