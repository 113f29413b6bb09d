"""HCS plates: a plate written by ome-zarr-py (0.4 and 0.5) in, one sample per field, per-field
outputs laid out as a plate again, opened by ome-zarr-py and validated by ome-zarr-models."""

import numpy as np
import pandas as pd
import pytest
import zarr

from microdiff import samples
from microdiff.errors import InputError
from microdiff.ingest import ingest
from microdiff.io import open_image, plate
from microdiff.io.labels import create_labels


def write_ome_zarr_plate(path, data, fmt):
    """A plate the way ome-zarr-py writes one: rows A-B, columns 1 and 3, two fields a well."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    fmt = {"0.4": FormatV04(), "0.5": FormatV05()}[fmt]
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    wells = ["A/1", "B/3"]
    write_plate_metadata(root, ["A", "B"], ["1", "3"], wells, fmt=fmt, name="P1")
    for w in wells:
        group = root.require_group(w)
        write_well_metadata(group, [{"path": "0"}, {"path": "1"}], fmt=fmt)
        for f in ("0", "1"):
            write_image(data[(w, f)], group.require_group(f), axes="cyx", fmt=fmt, scale_factors=[])
    return path


@pytest.fixture
def data(rng):
    return {
        (w, f): rng.integers(0, 4000, (2, 24, 32), dtype=np.uint16)
        for w in ("A/1", "B/3")
        for f in ("0", "1")
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_every_field_is_a_sample(tmp_path, data, version):
    path = write_ome_zarr_plate(tmp_path / "p.zarr", data, version)
    df = samples.load({"plate": str(path)})
    assert list(df.index) == ["A01_0", "A01_1", "B03_0", "B03_1"]
    assert list(df["well"]) == ["A01", "A01", "B03", "B03"] and list(df["field"]) == list("0101")
    assert set(df["plate"]) == {"P1"} and list(df["column"]) == ["1", "1", "3", "3"]
    samples.check_channel_counts(df)
    np.testing.assert_array_equal(open_image(df.loc["B03_1", "path"]).read(), data[("B/3", "1")])


def test_plate_round_trip(tmp_path, data):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    df = samples.load({"plate": str(write_ome_zarr_plate(tmp_path / "p.zarr", data, "0.4"))})
    table = []
    for s in df.itertuples():
        raw = tmp_path / s.sample / "raw.ome.zarr"
        source = {c: getattr(s, c) for c in plate.PLATE_COLUMNS}
        ingest(s.path, raw, source=source, progress=False)
        assert zarr.open_group(str(raw)).attrs["microdiff"]["source"]["well"] == s.well
        seg = zarr.open_group(str(tmp_path / s.sample / "seg.ome.zarr"), mode="w", zarr_format=2)
        labs = create_labels(seg, ["nuclei"], (24, 32), {"y": 1.0, "x": 1.0})
        labs["nuclei"]["0"][:] = np.arange(24 * 32, dtype=np.int32).reshape(24, 32) % 5
        table.append({**source, "sample": s.sample, "image": raw, "labels": seg.store.root})
    out = tmp_path / "out.ome.zarr"
    plate.write_plate(out, pd.DataFrame(table), name="P1")
    plate.validate(out)
    nodes = list(Reader(parse_url(str(out)))())
    assert [type(s).__name__ for s in nodes[0].specs] == ["Plate"]
    mosaic = np.asarray(nodes[0].data[0])  # ome-zarr-py tiles the wells' first fields
    assert mosaic.shape == (2, 48, 64)
    np.testing.assert_array_equal(mosaic[:, 24:, 32:], data[("B/3", "0")])
    back = samples.load({"plate": str(out)})
    assert list(back.index) == list(df.index)
    np.testing.assert_array_equal(open_image(back.loc["A01_1", "path"]).read(), data[("A/1", "1")])
    labels = zarr.open_group(str(out / "B" / "3" / "0" / "labels" / "nuclei"), mode="r")
    assert int(np.asarray(labels["0"]).max()) == 4


def test_not_a_plate_names_the_path(tmp_path):
    zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    with pytest.raises(InputError, match="x.zarr: Zarr group without NGFF HCS 'plate' metadata"):
        samples.load({"plate": str(tmp_path / "x.zarr")})


def test_well_and_plate_summaries():
    fields = pd.DataFrame(
        {
            "sample": ["A01_0", "A01_1", "B03_0"],
            "plate": "P",
            "well": ["A01", "A01", "B03"],
            "row": ["A", "A", "B"],
            "column": ["1", "1", "3"],
            "field": ["0", "1", "0"],
        }
    )
    objects = pd.DataFrame(
        {"sample": ["A01_0"] * 3 + ["A01_1"] * 1 + ["B03_0"] * 2, "kind": "nuclei"}
    )
    counts = pd.DataFrame(
        {
            "sample": ["A01_0", "A01_0", "A01_1", "A01_1", "B03_0", "B03_0"],
            "class": ["a", "b"] * 3,
            "count": [2, 1, 0, 1, 2, 0],
        }
    )
    wells, whole = plate.summaries(fields, objects, counts)
    a = wells.set_index("well").loc["A01"]
    assert a["fields"] == 2 and a["n_nuclei"] == 4 and a["fraction_a"] == pytest.approx(0.5)
    assert wells.set_index("well").loc["B03", "fraction_b"] == 0
    assert whole["n_nuclei"].item() == 6 and whole["fraction_a"].item() == pytest.approx(4 / 6)
