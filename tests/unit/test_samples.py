import numpy as np
import pytest

from microdiff import samples
from microdiff.errors import InputError
from tests.conftest import write_image


def _sheet(tmp_path, text):
    path = tmp_path / "samples.tsv"
    path.write_text(text)
    return path


def test_sheet_paths_relative_to_sheet(tmp_path):
    write_image(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), "tiff")
    df = samples.from_sheet(_sheet(tmp_path, "sample\tpath\tpixel_size\nA1\ta.tif\t0.3\n"))
    assert df.loc["A1", "path"] == str(tmp_path / "a.tif") and df.loc["A1", "pixel_size"] == "0.3"
    assert df.loc["A1", "channels"] is None


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "sample\tpath\nA\ta.tif\nA\ta.tif\n",
            r"duplicate sample name\(s\) \['A'\] on rows \[2, 3\]",
        ),
        ("sample\tpath\na/b\ta.tif\n", "row 2: sample name 'a/b' is not allowed"),
        ("sample\tpath\na;rm\ta.tif\n", "not allowed"),
        ("sample\tfile\nA\ta.tif\n", r"missing column\(s\) \['path'\]"),
        ("sample\tpath\tcolour\nA\ta.tif\tred\n", "unknown column"),
        ("sample\tpath\nB\tmissing.tif\n", "missing.tif: file not found"),
        ("sample\tpath\tpixel_size\nA\ta.tif\t-1\n", "row 2: pixel_size '-1'"),
        ("sample\tpath\tpixel_size\nA\ta.tif\tinf\n", "row 2: pixel_size 'inf' is not a pos"),
        ("sample\tpath\tpixel_size\nA\ta.tif\tnan\n", "row 2: pixel_size 'nan' is not a pos"),
        ("sample\tpath\nexperiment\ta.tif\n", "row 2: sample name 'experiment' is reserved"),
        ("sample\tpath\nReport\ta.tif\n", "reserved: the workflow writes a folder report/"),
        ("sample\tpath\n" + "a" * 101 + "\ta.tif\n", "is 101 characters; at most 100"),
        ("sample\tpath\nA\ta.tif\tx\n", "row 2: 3 fields but the header has 2"),
        ("sample\tpath\n\nA\ta.tif\n\nA\ta.tif\n", r"on rows \[3, 5\]"),
    ],
)
def test_bad_sheets_name_the_problem(tmp_path, text, match):
    write_image(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), "tiff")
    with pytest.raises(InputError, match=match):
        samples.from_sheet(_sheet(tmp_path, text))


def test_glob_names_strip_extensions(tmp_path):
    for name in ("x1.ome.tif", "x2.tif"):
        write_image(tmp_path / name, np.zeros((4, 4), np.uint8), "tiff")
    df = samples.from_glob(str(tmp_path / "*.tif"))
    assert list(df.index) == ["x1", "x2"]


def test_exactly_one_input_kind():
    with pytest.raises(InputError, match="exactly one"):
        samples.load({"demo": None, "sheet": None, "glob": None})
    assert list(samples.load({"demo": {"samples": 2, "shape": [64, 64]}}).index) == [
        "demo01",
        "demo02",
    ]


def test_channel_counts_must_agree(tmp_path):
    write_image(tmp_path / "a.ome.tif", np.zeros((2, 8, 8), np.uint8), "ome-tiff")
    write_image(tmp_path / "b.ome.tif", np.zeros((3, 8, 8), np.uint8), "ome-tiff")
    df = samples.from_glob(str(tmp_path / "*.tif"))
    with pytest.raises(InputError, match="b.ome.tif: has 3 channel"):
        samples.check_channel_counts(df)


def test_trailing_tab_and_spaces_are_harmless(tmp_path):
    write_image(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), "tiff")
    text = "sample\tpath\tchannels\t\nA\ta.tif\tnuclei, cytoplasm\t\n"
    df = samples.from_sheet(_sheet(tmp_path, text))
    assert df.loc["A", "channels"] == "nuclei,cytoplasm"
    assert df.loc["A", "path"] == str(tmp_path / "a.tif")


def test_glob_duplicates_name_the_files(tmp_path):
    for name in ("x1.ome.tif", "x1.tif"):
        write_image(tmp_path / name, np.zeros((4, 4), np.uint8), "tiff")
    with pytest.raises(InputError, match="x1.ome.tif"):
        samples.from_glob(str(tmp_path / "*.tif"))


def test_infinite_pixel_size_is_refused_at_ingest(tmp_path):
    from microdiff.ingest import ingest

    write_image(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), "tiff")
    with pytest.raises(InputError, match="a.tif: pixel size .* not a positive finite"):
        ingest(tmp_path / "a.tif", tmp_path / "o.ome.zarr", axes="yx", pixel_size=float("inf"))
    assert not (tmp_path / "o.ome.zarr").exists()
