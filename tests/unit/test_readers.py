import numpy as np
import pytest
import tifffile
import zarr

from microdiff.errors import InputError
from microdiff.io import open_image
from tests.conftest import write_image

FORMATS = ["tiff", "ome-tiff", "zarr", "ome-zarr"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_2d_multichannel_roundtrip(tmp_path, rng, fmt, dtype):
    data = (rng.random((3, 40, 50)) * 200).astype(dtype)
    ext = {"tiff": "tif", "ome-tiff": "ome.tif", "zarr": "zarr", "ome-zarr": "ome.zarr"}[fmt]
    path = write_image(tmp_path / f"img.{ext}", data, fmt, "cyx")
    src = open_image(path, axes="cyx" if fmt == "tiff" else None)
    assert src.axes == "cyx" and src.shape == (3, 40, 50) and src.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(src.read(), data)
    np.testing.assert_array_equal(src.read((slice(5, 9), slice(10, 30))), data[:, 5:9, 10:30])
    if fmt in ("ome-tiff", "ome-zarr"):
        assert src.scale["x"] == pytest.approx(0.5) and src.scale["y"] == pytest.approx(0.5)


@pytest.mark.parametrize("fmt", ["ome-tiff", "zarr", "ome-zarr"])
def test_3d_reorders_to_czyx(tmp_path, rng, fmt):
    data = rng.integers(0, 4000, (6, 2, 20, 30), dtype=np.uint16)  # z, c, y, x
    ext = {"ome-tiff": "ome.tif", "zarr": "zarr", "ome-zarr": "ome.zarr"}[fmt]
    axes = "zcyx" if fmt != "ome-zarr" else "czyx"
    if fmt == "ome-zarr":
        data = np.moveaxis(data, 1, 0)
    path = write_image(tmp_path / f"v.{ext}", data, fmt, axes)
    src = open_image(path)
    assert src.axes == "czyx" and src.shape == (2, 6, 20, 30)
    expect = np.moveaxis(data, 1, 0) if fmt != "ome-zarr" else data
    np.testing.assert_array_equal(src.read(), expect)
    np.testing.assert_array_equal(
        src.read((slice(1, 3), slice(0, 5), slice(2, 4))), expect[:, 1:3, 0:5, 2:4]
    )


def test_single_channel_plain_tiff_gets_channel_axis(tmp_path, rng):
    data = rng.integers(0, 255, (33, 44), dtype=np.uint8)
    src = open_image(write_image(tmp_path / "a.tif", data, "tiff"))
    assert src.axes == "cyx" and src.shape == (1, 33, 44)
    np.testing.assert_array_equal(src.read()[0], data)


def test_compressed_tiff_reads_regions(tmp_path, rng):
    data = rng.integers(0, 60000, (300, 200), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", data, compression="zlib", tile=(64, 64))
    src = open_image(tmp_path / "c.tif")
    np.testing.assert_array_equal(src.read((slice(70, 140), slice(3, 190)))[0], data[70:140, 3:190])


def test_ngff_05_is_read(tmp_path, rng):
    data = rng.integers(0, 100, (1, 16, 16), dtype=np.uint16)
    group = zarr.open_group(str(tmp_path / "v5.ome.zarr"), mode="w", zarr_format=3)
    arr = group.create_array("s0", shape=data.shape, dtype=data.dtype, chunks=(1, 16, 16))
    arr[:] = data
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "yx"
    ]
    tr = [{"type": "scale", "scale": [1, 0.3, 0.3]}]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {"axes": axes, "datasets": [{"path": "s0", "coordinateTransformations": tr}]}
        ],
    }
    src = open_image(tmp_path / "v5.ome.zarr")
    assert src.scale["x"] == pytest.approx(0.3)
    np.testing.assert_array_equal(src.read(), data)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.tif: file not found"):
        open_image(tmp_path / "nope.tif")


def test_truncated_tiff_names_file(tmp_path, rng):
    data = rng.integers(0, 60000, (256, 256), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", data, compression="zlib", tile=(64, 64))
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="t.tif"):
        open_image(tmp_path / "t.tif").read()


def test_garbage_file(tmp_path):
    (tmp_path / "g.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match="g.tif: not a readable TIFF"):
        open_image(tmp_path / "g.tif")


def test_time_series_is_refused(tmp_path, rng):
    data = rng.integers(0, 100, (4, 16, 16), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "ts.ome.tif", data, ome=True, metadata={"axes": "TYX"})
    with pytest.raises(InputError, match="unsupported axis layout"):
        open_image(tmp_path / "ts.ome.tif")


def test_ambiguous_stack_needs_axes(tmp_path, rng):
    data = rng.integers(0, 100, (4, 16, 16), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack")
    with pytest.raises(InputError, match="ambiguous axis layout"):
        open_image(tmp_path / "s.tif")
    assert open_image(tmp_path / "s.tif", axes="zyx").shape == (1, 4, 16, 16)


def test_unsupported_dtype(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((8, 8), np.float64))
    with pytest.raises(InputError, match="unsupported pixel type float64"):
        open_image(tmp_path / "f.tif")


def test_empty_zarr(tmp_path):
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(0, 10), dtype="uint8")
    with pytest.raises(InputError, match="empty image"):
        open_image(tmp_path / "e.zarr")
