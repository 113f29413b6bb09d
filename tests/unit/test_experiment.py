"""experiment.sample_table: a plate field's well/row/column/field become columns."""

import json

import numpy as np
import pandas as pd
import zarr

from microdiff import experiment


def _stores(tmp_path, name):
    raw = tmp_path / name / "raw.ome.zarr"
    g = zarr.open_group(str(raw), mode="w")
    g.create_array("0", data=np.zeros((1, 8, 8), dtype="uint16"))
    g.attrs["multiscales"] = [
        {
            "axes": [{"name": a} for a in "cyx"],
            "datasets": [{"path": "0", "coordinateTransformations": [{"scale": [1, 0.5, 0.5]}]}],
        }
    ]
    g.attrs["omero"] = {"channels": [{"label": "dna"}]}
    tiles = tmp_path / name / "tiles.parquet"
    pd.DataFrame({"tile": [0, 1], "shard": [0, 0]}).to_parquet(tiles)
    norm = tmp_path / name / "norm.json"
    norm.write_text(json.dumps({"channels": [{"low": 1.0, "high": 9.0}]}))
    return {"raw": raw, "tiles": tiles, "norm": norm}


def test_plate_fields_carry_well_row_column_field(tmp_path):
    src = {"plate": "p1", "well": "B03", "row": "B", "column": "03", "field": "1"}
    samples = {"B03_1": _stores(tmp_path, "B03_1") | {"source": src}}
    samples["loose"] = _stores(tmp_path, "loose")
    df = experiment.sample_table(samples).set_index("sample")
    assert list(df.columns[:5]) == ["plate", "well", "row", "column", "field"]
    assert df.loc["B03_1", ["well", "row", "column", "field"]].tolist() == ["B03", "B", "03", "1"]
    assert df["well"].isna()["loose"]
    assert df.loc["B03_1", "tiles"] == 2 and df.loc["B03_1", "ch0_high"] == 9.0


def test_no_plate_no_plate_columns(tmp_path):
    df = experiment.sample_table({"a": _stores(tmp_path, "a")})
    assert "well" not in df.columns and df.loc[0, "channels"] == "dna"
