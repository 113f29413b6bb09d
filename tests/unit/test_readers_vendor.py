"""Vendor formats through bioio: CZI written by pylibCZIrw, scenes through bioio's OME-TIFF
reader (no Python package writes multi-scene CZI metadata, ND2 or LIF), missing plugins."""

import importlib.util

import numpy as np
import pytest
import tifffile

from microdiff import samples
from microdiff.cli import main
from microdiff.errors import InputError
from microdiff.ingest import ingest
from microdiff.io import open_image, vendor


@pytest.fixture
def czi(tmp_path, rng):
    from pylibCZIrw import czi as pyczi

    data = rng.integers(0, 4000, (2, 3, 20, 30), dtype=np.uint16)  # c, z, y, x
    path = tmp_path / "run.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as f:
        for c in range(2):
            for z in range(3):
                f.write(data[c, z][..., None], plane={"C": c, "Z": z})
        f.write_metadata(
            channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.325e-6, scale_y=0.325e-6, scale_z=1e-6
        )
    return path, data


def test_czi_channels_z_pixel_sizes_names(czi):
    path, data = czi
    src = open_image(path)
    assert src.axes == "czyx" and src.shape == (2, 3, 20, 30) and src.dtype == np.uint16
    assert src.channel_names == ["DAPI", "GFP"]
    assert src.scale == pytest.approx({"z": 1.0, "y": 0.325, "x": 0.325})
    np.testing.assert_array_equal(src.read(), data)
    region = (slice(1, 3), slice(4, 9), slice(10, 25))
    np.testing.assert_array_equal(src.read(region), data[:, 1:3, 4:9, 10:25])


def test_czi_ingests_with_metadata(czi, tmp_path):
    path, data = czi
    assert main(["ingest", str(path), str(tmp_path / "raw.ome.zarr")]) == 0
    back = open_image(tmp_path / "raw.ome.zarr")
    assert back.channel_names == ["DAPI", "GFP"]
    assert back.scale == pytest.approx({"z": 1.0, "y": 0.325, "x": 0.325})
    np.testing.assert_array_equal(back.read(), data)


@pytest.fixture
def scenes_tiff(tmp_path, rng):
    """A two-position OME-TIFF (two OME Images), the layout a multi-scene vendor file has."""
    a, b = (rng.integers(0, 4000, (2, 20, 30), dtype=np.uint16) for _ in range(2))
    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        for arr in (a, b):
            meta = {"axes": "CYX", "PhysicalSizeX": 0.4, "PhysicalSizeY": 0.4}
            tw.write(arr, metadata={**meta, "Channel": {"Name": ["DAPI", "GFP"]}})
    return path, a, b


def test_scene_by_index_and_id(scenes_tiff):
    path, a, b = scenes_tiff
    assert vendor.scenes(path, "bioio_ome_tiff") == ["Image:0", "Image:1"]
    src = vendor.open_bioio(path, scene=1, plugin="bioio_ome_tiff")
    assert src.axes == "cyx" and src.channel_names == ["DAPI", "GFP"]
    assert src.scale == pytest.approx({"y": 0.4, "x": 0.4})
    np.testing.assert_array_equal(src.read(), b)
    src = vendor.open_bioio(path, scene="Image:0", plugin="bioio_ome_tiff")
    np.testing.assert_array_equal(src.read((slice(2, 5), slice(0, 9))), a[:, 2:5, 0:9])
    with pytest.raises(InputError, match=r"plate.ome.tif: no scene 7 \(scenes: "):
        vendor.open_bioio(path, scene=7, plugin="bioio_ome_tiff")


def test_each_scene_becomes_a_sample(scenes_tiff, tmp_path, monkeypatch):
    # route .ome.tif through bioio as a vendor format, so the real sample/ingest path runs
    monkeypatch.setitem(vendor.PLUGINS, ".ome.tif", ("bioio_ome_tiff", "bioio-ome-tiff"))
    path, a, b = scenes_tiff
    df = samples.load({"glob": str(tmp_path / "*.ome.tif")})
    assert list(df.index) == ["plate_s0", "plate_s1"] and list(df["scene"]) == ["0", "1"]
    samples.check_channel_counts(df)
    (tmp_path / "s.tsv").write_text("sample\tpath\tscene\nB\tplate.ome.tif\t1\n")
    df = samples.load({"sheet": str(tmp_path / "s.tsv")})
    assert list(df.index) == ["B"]
    out = tmp_path / "B.ome.zarr"
    ingest(df.loc["B", "path"], out, scene=df.loc["B", "scene"], progress=False)
    np.testing.assert_array_equal(open_image(out).read(), b)


@pytest.mark.parametrize(
    "ext,plugin", [(".nd2", "bioio-nd2"), (".czi", "bioio-czi"), (".lif", "bioio-lif")]
)
def test_missing_plugin_is_one_line_naming_file_and_extra(tmp_path, monkeypatch, ext, plugin):
    path = tmp_path / f"x{ext}"
    path.write_bytes(b"\0" * 64)
    real = importlib.util.find_spec
    module = plugin.replace("-", "_")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == module else real(n, *a)
    )
    with pytest.raises(InputError) as err:
        open_image(path)
    assert str(err.value) == (
        f"{path}: reading this format needs bioio and {plugin}: pip install 'microdiff[formats]'"
    )


@pytest.mark.parametrize("ext", [".nd2", ".lif", ".czi"])
def test_unreadable_vendor_file_names_file_and_plugin(tmp_path, ext):
    (tmp_path / f"bad{ext}").write_bytes(b"not a microscope file" * 8)
    with pytest.raises(InputError, match=rf"bad{ext}: not readable by bioio_"):
        open_image(tmp_path / f"bad{ext}")


def test_scene_on_a_single_image_format_is_refused(tmp_path, rng):
    tifffile.imwrite(tmp_path / "a.tif", rng.integers(0, 9, (8, 8), dtype=np.uint8))
    with pytest.raises(InputError, match="scene 2 given, but this format holds one image"):
        open_image(tmp_path / "a.tif", scene=2)
