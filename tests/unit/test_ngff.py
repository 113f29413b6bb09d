import numpy as np
import pytest
import zarr

from microdiff.errors import InputError
from microdiff.ingest import ingest
from microdiff.io import ngff
from tests.conftest import write_image


@pytest.mark.parametrize("shape", [(2, 1100, 700), (1, 5, 600, 530)])
def test_ingest_writes_valid_ngff_with_pyramid(tmp_path, rng, shape):
    data = rng.integers(0, 4000, shape, dtype=np.uint16)
    axes = "cyx" if len(shape) == 3 else "czyx"
    src = write_image(tmp_path / "in.ome.tif", data, "ome-tiff", axes, pixel_size=0.25)
    out = tmp_path / "raw.ome.zarr"
    summary = ingest(src, out, channel_names=[f"c{i}" for i in range(shape[0])], progress=False)
    ngff.validate(out)  # ome-zarr-models
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["0"][:], data)
    shapes = [group[str(k)].shape for k in range(summary["levels"])]
    assert max(shapes[-1][-2:]) < 512 <= max(shapes[-2][-2:])
    assert all(s[:-2] == shape[:-2] for s in shapes)  # c (and z) kept
    ms = group.attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == list(axes)
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales[0][-1] == pytest.approx(0.25) and scales[1][-1] == pytest.approx(0.5)
    prov = group.attrs["microdiff"]
    assert prov["stage"] == "ingest" and prov["version"] and prov["inputs"]["image"] == str(src)
    # about 1 MB chunks where the image is large enough
    chunk = group["0"].chunks
    assert chunk[0] == 1 and np.prod(chunk) * 2 >= 0.99 * min(1 << 20, np.prod(shape[1:]) * 2)


def test_ome_zarr_py_reads_our_output(tmp_path, rng):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    data = rng.integers(0, 255, (2, 600, 600), dtype=np.uint8)
    out = tmp_path / "raw.ome.zarr"
    ingest(write_image(tmp_path / "a.ome.tif", data, "ome-tiff"), out, progress=False)
    node = next(iter(Reader(parse_url(str(out)))()))
    assert len(node.data) == 2
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)


def test_pyramid_level_is_mean_of_2x2():
    block = np.arange(16, dtype=np.uint16).reshape(1, 4, 4)
    np.testing.assert_array_equal(ngff.downsample2(block)[0], [[2, 4], [10, 12]])  # rint(2.5)=2


@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 7, 9), (2, 64, 510), (1, 5, 33, 65), (4, 1, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.uint8])
def test_pyramid_mean_is_numpys_mean_over_each_2x2(rng, shape, dtype):
    """downsample2 sums the 2 x 2 pixels in a fixed order; numpy's mean over a reshaped array
    (what it computed before) gives the same values bit for bit, odd edges padded as before."""
    a = rng.lognormal(0, 3, shape) if dtype in (np.float32, np.float64) else rng.random(shape) * 250
    a = a.astype(dtype)
    y, x = shape[-2:]
    pad = [(0, 0)] * (len(shape) - 2) + [(0, y % 2), (0, x % 2)]
    b = np.pad(a.astype(np.float32), pad, mode="edge")
    ref = b.reshape(*b.shape[:-2], b.shape[-2] // 2, 2, b.shape[-1] // 2, 2).mean(axis=(-3, -1))
    ref = (np.rint(ref) if np.issubdtype(dtype, np.integer) else ref).astype(dtype)
    out = ngff.downsample2(a)
    assert out.dtype == dtype and np.array_equal(out, ref)


def test_nan_pixels_fail_and_leave_nothing(tmp_path):
    data = np.ones((1, 64, 64), np.float32)
    data[0, 10, 10] = np.nan
    src = write_image(tmp_path / "n.ome.tif", data, "ome-tiff")
    with pytest.raises(InputError, match="n.ome.tif: 1 NaN or infinite pixels"):
        ingest(src, tmp_path / "raw.ome.zarr", progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "n.ome.tif"]


def test_channel_name_count_mismatch(tmp_path, rng):
    data = rng.integers(0, 9, (2, 16, 16), dtype=np.uint8)
    src = write_image(tmp_path / "a.ome.tif", data, "ome-tiff")
    with pytest.raises(InputError, match="1 channel names given for 2 channels"):
        ingest(src, tmp_path / "o.ome.zarr", channel_names=["x"], progress=False)


def test_validate_rejects_broken_metadata(tmp_path, rng):
    out = tmp_path / "raw.ome.zarr"
    ingest(write_image(tmp_path / "a.tif", np.zeros((9, 9), np.uint8), "tiff"), out, progress=False)
    group = zarr.open_group(str(out), mode="r+")
    ms = group.attrs["multiscales"]
    ms[0]["axes"][0]["type"] = "space"  # c is not a space axis with a unit
    ms[0]["axes"] = ms[0]["axes"][1:]
    group.attrs["multiscales"] = ms
    with pytest.raises(ValueError, match="does not validate"):
        ngff.validate(out)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("small", [True, False])
def test_an_assembled_store_has_the_files_of_one_written_in_place(tmp_path, rng, small):
    """A small image assembled in memory (`assembled`) is written as the same files, bit for
    bit, as one written in place, sub-stores (`child`) included; it validates there."""
    data = rng.integers(0, 4000, (2, 300, 200)).astype(np.uint16)

    def write(target):
        for where in (target, ngff.child(target, "sub")):
            group = ngff.create_image(where, data.shape, np.uint16, "cyx", {"y": 0.5, "x": 0.5})
            group["0"][...] = data
            ngff.fill_pyramid(group)
            ngff.set_display_windows(group)
            ngff.validate(where)

    write(tmp_path / "in_place.zarr")
    with ngff.assembled(tmp_path / "assembled.zarr", small) as target:
        write(target)
        assert (tmp_path / "assembled.zarr").exists() != small  # nothing on disk before the end
    ngff.validate(tmp_path / "assembled.zarr")
    ngff.validate(tmp_path / "assembled.zarr" / "sub")
    assert _files(tmp_path / "assembled.zarr") == _files(tmp_path / "in_place.zarr")


def test_an_assembled_store_that_fails_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError), ngff.assembled(tmp_path / "x.zarr", True) as target:
        ngff.create_image(target, (1, 16, 16), np.uint8, "cyx")
        raise RuntimeError("the stage failed")
    assert not (tmp_path / "x.zarr").exists()
