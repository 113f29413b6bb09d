"""Bad input through real snakemake runs: a one-line error naming the file, nothing left behind."""

import numpy as np
import pytest
import tifffile
import zarr

from tests.conftest import write_image
from tests.workflow.conftest import snakemake, spine_only, write_config


def _experiment(wd, files: dict[str, str], extra_rows: str = "") -> None:
    """A sheet-based config over `files` (sample -> file name under wd/in)."""
    rows = "".join(f"{s}\tin/{f}\n" for s, f in files.items())
    (wd / "samples.tsv").write_text("sample\tpath\n" + rows + extra_rows)
    # the spine alone: these inputs fail at parse time or in ingest
    write_config(wd, input={"demo": None, "sheet": "samples.tsv", "glob": None}, **spine_only())


def _good(wd, name="good.ome.tif", channels=2):
    (wd / "in").mkdir(exist_ok=True)
    data = np.random.default_rng(0).integers(0, 4000, (channels, 64, 64), dtype=np.uint16)
    return write_image(wd / "in" / name, data, "ome-tiff")


def _fails_with(wd, message: str, bad: str = "*") -> str:
    """Run, expect failure with `message`, and no store (finished or half-written) for `bad`."""
    proc = snakemake(wd, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert message in text, text
    leftovers = list(wd.glob(f"results/{bad}/*raw.ome.zarr*")) + list(wd.glob("results/**/.*tmp-*"))
    assert not leftovers, leftovers
    return text


def test_missing_file(tmp_path):
    _good(tmp_path)
    _experiment(tmp_path, {"a": "good.ome.tif", "b": "nope.tif"})
    _fails_with(tmp_path, "nope.tif: file not found")


def test_duplicate_sample_name(tmp_path):
    _good(tmp_path)
    _experiment(tmp_path, {"a": "good.ome.tif"}, extra_rows="a\tin/good.ome.tif\n")
    _fails_with(tmp_path, "duplicate sample name(s) ['a'] on rows [2, 3]")


@pytest.mark.parametrize("name", ["a/b", "a;rm -rf", "$(x)"])
def test_unsafe_sample_name(tmp_path, name):
    _good(tmp_path)
    _experiment(tmp_path, {name: "good.ome.tif"})
    _fails_with(tmp_path, "is not allowed")


def test_channel_counts_differ(tmp_path):
    _good(tmp_path)
    _good(tmp_path, "three.ome.tif", channels=3)
    _experiment(tmp_path, {"a": "good.ome.tif", "b": "three.ome.tif"})
    _fails_with(tmp_path, "three.ome.tif: has 3 channel(s) but")


def test_unsupported_axis_layout(tmp_path):
    (tmp_path / "in").mkdir()
    data = np.zeros((3, 32, 32), np.uint16)
    tifffile.imwrite(tmp_path / "in/ts.ome.tif", data, ome=True, metadata={"axes": "TYX"})
    _experiment(tmp_path, {"a": "ts.ome.tif"})
    _fails_with(tmp_path, "ts.ome.tif: unsupported axis layout 'tyx'")


def test_empty_image(tmp_path):
    (tmp_path / "in").mkdir()
    zarr.create_array(str(tmp_path / "in/e.zarr"), shape=(0, 16), dtype="uint16")
    _experiment(tmp_path, {"a": "e.zarr"})
    _fails_with(tmp_path, "e.zarr: empty image")


def test_not_a_tiff(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in/bad.tif").write_bytes(b"II*\x00garbage")
    _experiment(tmp_path, {"a": "bad.tif"})
    _fails_with(tmp_path, "bad.tif: not a readable TIFF")


def test_truncated_tiff_fails_in_ingest(tmp_path):
    _good(tmp_path, channels=1)
    data = np.random.default_rng(1).integers(0, 60000, (256, 256), dtype=np.uint16)
    path = tmp_path / "in/cut.tif"
    tifffile.imwrite(path, data, compression="zlib", tile=(64, 64))
    path.write_bytes(path.read_bytes()[:-20000])  # the header survives, the pixels do not
    _experiment(tmp_path, {"good": "good.ome.tif", "cut": "cut.tif"})
    text = _fails_with(tmp_path, "microdiff ingest: error:", bad="cut")
    assert "cut.tif: cannot read pixel data" in text


def test_nan_pixels_fail_in_ingest(tmp_path):
    (tmp_path / "in").mkdir()
    data = np.ones((1, 64, 64), np.float32)
    data[0, 3, 3] = np.inf
    write_image(tmp_path / "in/f.ome.tif", data, "ome-tiff")
    _experiment(tmp_path, {"a": "f.ome.tif"})
    _fails_with(tmp_path, "f.ome.tif: 1 NaN or infinite pixels")


def test_sample_named_like_a_workflow_folder(tmp_path):
    """A sample named 'experiment' wrote into results/experiment/ and lost the other's classes."""
    _good(tmp_path)
    _experiment(tmp_path, {"a": "good.ome.tif", "experiment": "good.ome.tif"})
    _fails_with(tmp_path, "sample name 'experiment' is reserved")
    assert not (tmp_path / "results").exists()


def test_ome_zarr_with_a_missing_chunk(tmp_path):
    (tmp_path / "in").mkdir()
    data = np.random.default_rng(0).integers(1, 4000, (2, 64, 64), dtype=np.uint16)
    store = write_image(tmp_path / "in/holed.ome.zarr", data, "ome-zarr")
    (tmp_path / "in/holed.ome.zarr/0/1/0/0").unlink()
    _experiment(tmp_path, {"a": "holed.ome.zarr"})
    _fails_with(tmp_path, "holed.ome.zarr: 1 of 2 chunk files of array '0' are missing")
    assert zarr.open_group(store, mode="r")["0"].shape == (2, 64, 64)  # input untouched
