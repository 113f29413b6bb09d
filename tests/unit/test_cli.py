"""The `microdiff` command line runs each stage on paths a user names."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from microdiff.cli import build_parser, main
from microdiff.io import ngff


def test_stages_chain_on_user_paths(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "exp"), "--samples", "1", "--shape", "64", "96"]) == 0
    sheet = pd.read_csv(tmp_path / "exp/samples.tsv", sep="\t")
    image = tmp_path / "exp" / sheet.loc[0, "path"]
    raw = tmp_path / "raw.ome.zarr"
    assert main(["ingest", str(image), str(raw)]) == 0
    ngff.validate(raw)
    capsys.readouterr()
    assert (
        main(["tiles", str(raw), str(tmp_path / "t.parquet"), "--tile", "32", "--halo", "4"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["tiles"] == len(
        pd.read_parquet(tmp_path / "t.parquet")
    )
    assert main(["normalize", str(raw), "--out", str(tmp_path / "n.json")]) == 0
    stats = json.loads((tmp_path / "n.json").read_text())
    assert len(stats["channels"]) == 2 and stats["mode"] == "sample"


def test_input_error_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "missing.tif"), str(tmp_path / "o.ome.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"microdiff ingest: error: {tmp_path / 'missing.tif'}: file not found"
    assert not (tmp_path / "o.ome.zarr").exists()


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_every_subcommand_has_help(command):
    proc = subprocess.run(
        [sys.executable, "-m", "microdiff.cli", command, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "usage: microdiff" in proc.stdout


@pytest.fixture
def small_tif(tmp_path):
    import numpy as np
    import tifffile

    path = tmp_path / "img.tif"
    tifffile.imwrite(path, np.arange(32 * 48, dtype=np.uint16).reshape(32, 48))
    return path


def test_existing_output_is_kept_without_overwrite(small_tif, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("x")
    assert main(["ingest", str(small_tif), str(out), "--axes", "yx"]) == 2
    assert "output exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "x"
    assert main(["ingest", str(small_tif), str(out), "--axes", "yx", "--overwrite"]) == 0
    ngff.validate(out)


def test_input_is_never_replaced_even_with_overwrite(small_tif, capsys):
    before = small_tif.read_bytes()
    args = ["ingest", str(small_tif), str(small_tif), "--axes", "yx", "--overwrite"]
    assert main(args) == 2
    assert "the output is also the input image" in capsys.readouterr().err
    assert small_tif.is_file() and small_tif.read_bytes() == before


def test_normalize_refuses_to_replace_a_folder(small_tif, tmp_path, capsys):
    raw = tmp_path / "raw.ome.zarr"
    assert main(["ingest", str(small_tif), str(raw), "--axes", "yx"]) == 0
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "keep").write_text("k")
    assert main(["normalize", str(raw), "--out", str(folder)]) == 2
    assert f"{folder}: output exists" in capsys.readouterr().err
    assert (folder / "keep").read_text() == "k"


def test_os_error_is_one_line(small_tif, tmp_path, capsys):
    parent = tmp_path / "file"
    parent.write_text("not a folder")
    assert main(["ingest", str(small_tif), str(parent / "o.ome.zarr"), "--axes", "yx"]) == 2
    err = capsys.readouterr().err  # after the progress bar, on its line
    assert err.count("microdiff ingest: error: ") == 1 and "Traceback" not in err
    assert f"error: {parent}: " in err


def test_ambiguous_axes_message_points_at_the_option_that_fixes_it(tmp_path, capsys):
    import numpy as np
    import tifffile

    from microdiff.errors import InputError
    from microdiff.io import open_image

    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((4, 16, 16), np.uint16), photometric="minisblack")
    with pytest.raises(InputError, match="sample sheet's axes column"):
        open_image(stack)  # the workflow's user fixes it in the sheet
    assert main(["ingest", str(stack), str(tmp_path / "o.ome.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"microdiff ingest: error: {stack}: ambiguous axis layout")
    assert "--axes" in err and "sheet" not in err
    assert not (tmp_path / "o.ome.zarr").exists()
