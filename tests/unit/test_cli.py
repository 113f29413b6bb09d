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
