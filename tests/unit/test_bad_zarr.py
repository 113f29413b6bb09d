"""Broken OME-Zarr input (issue 16 cases 3 and 4): one line naming the store, nothing written."""

import json
import shutil

import numpy as np
import pytest

from microdiff.cli import main
from microdiff.errors import InputError
from microdiff.io import open_image
from tests.conftest import write_image


@pytest.fixture
def good(tmp_path, rng):
    data = rng.integers(1, 200, (2, 64, 64), dtype=np.uint8)
    return write_image(tmp_path / "good.ome.zarr", data, "ome-zarr"), data


def _attrs_path(store):
    from pathlib import Path

    p = Path(store)
    return p / "zarr.json" if (p / "zarr.json").exists() else p / ".zattrs"


def _edit_multiscales(store, edit):
    path = _attrs_path(store)
    doc = json.loads(path.read_text())
    attrs = doc.get("attributes", doc)
    meta = attrs.get("ome", attrs)
    edit(meta)
    path.write_text(json.dumps(doc))


def _chunk_files(store):
    from pathlib import Path

    level = Path(store) / "0"
    return sorted(p for p in level.rglob("*") if p.is_file() and not p.name.startswith((".z", "z")))


def test_an_all_zero_region_is_stored_so_it_reads(tmp_path):
    data = np.zeros((1, 64, 64), np.uint16)
    store = write_image(tmp_path / "dark.ome.zarr", data, "ome-zarr")
    assert _chunk_files(store), "zero chunks must be written, or they read as missing"
    np.testing.assert_array_equal(open_image(store).read(), data)


def test_missing_chunk_is_an_error_naming_store_and_chunk(good, tmp_path, capsys, monkeypatch):
    store, _ = good
    chunk = _chunk_files(store)[0]
    chunk.unlink()
    with pytest.raises(InputError) as err:
        open_image(store)
    msg = str(err.value)
    assert msg.startswith(str(store)) and "missing" in msg
    assert "MICRODIFF_ALLOW_SPARSE_ZARR" in msg
    rel = chunk.relative_to(store).as_posix()
    assert f"'{rel}'" in msg
    # through the CLI: exit 2, one line, no output store
    out = tmp_path / "raw.ome.zarr"
    assert main(["ingest", str(store), str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(store) in lines[0] and "missing" in lines[0]
    assert not out.exists()
    # an array written sparse on purpose is read when the user says so
    monkeypatch.setenv("MICRODIFF_ALLOW_SPARSE_ZARR", "1")
    assert open_image(store).read().shape == (2, 64, 64)


def _drop_axes(meta):
    del meta["multiscales"][0]["axes"]


def _missing_dataset(meta):
    meta["multiscales"][0]["datasets"][0]["path"] = "nope"


def _empty(meta):
    meta["multiscales"] = []


def _no_datasets(meta):
    meta["multiscales"][0]["datasets"] = []


def _bad_scale(meta):
    meta["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, "a", 1]


BROKEN = {
    "no axes": (_drop_axes, "no 'axes'"),
    "dataset path to a missing array": (_missing_dataset, "'nope' names no array"),
    "multiscales []": (_empty, "'multiscales' is empty"),
    "no datasets": (_no_datasets, "no 'datasets'"),
    "scale not numbers": (_bad_scale, "not a list of numbers"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_ngff_metadata_is_one_line(good, tmp_path, capsys, case):
    store, _ = good
    edit, expected = BROKEN[case]
    _edit_multiscales(store, edit)
    with pytest.raises(InputError) as err:
        open_image(store)
    assert str(err.value).startswith(str(store)) and expected in str(err.value)
    out = tmp_path / "raw.ome.zarr"
    assert main(["ingest", str(store), str(out)]) == 2
    err_text = capsys.readouterr().err
    assert "Traceback" not in err_text and expected in err_text
    assert not out.exists()


def test_axes_as_plain_strings_are_read(good):
    store, data = good

    def plain(meta):
        ms = meta["multiscales"][0]
        ms["axes"] = [a["name"] for a in ms["axes"]]

    _edit_multiscales(store, plain)
    src = open_image(store)
    assert src.axes == "cyx"
    np.testing.assert_array_equal(src.read(), data)


def test_missing_axes_can_come_from_the_sheet(good):
    store, data = good
    _edit_multiscales(store, _drop_axes)
    np.testing.assert_array_equal(open_image(store, axes="cyx").read(), data)


def test_input_store_is_left_intact(good, tmp_path):
    store, _ = good
    _chunk_files(store)[0].unlink()
    before = sorted(p.as_posix() for p in __import__("pathlib").Path(store).rglob("*"))
    main(["ingest", str(store), str(tmp_path / "o.ome.zarr")])
    after = sorted(p.as_posix() for p in __import__("pathlib").Path(store).rglob("*"))
    assert before == after
    shutil.rmtree(store)
