"""A simulated HCS plate (2 wells x 2 fields) end to end: every field a sample, segmented,
measured and classified, summarized per well and per plate, laid out as an NGFF plate again."""

import pandas as pd
import pytest

from microdiff import samples as sample_sheet
from microdiff.ingest import ingest
from microdiff.io import plate
from microdiff.simulate import write_experiment
from tests.workflow.conftest import TINY, snakemake, write_config

pytestmark = pytest.mark.workflow


def simulated_plate(folder):
    """Four simulated images as fields 0 and 1 of wells A/1 and B/2 of an NGFF plate."""
    sheet = sample_sheet.from_sheet(
        write_experiment(folder / "sim", n_samples=4, shape=(160, 192), seed=1, pixel_size=0.5)
    )
    table = []
    for i, row in enumerate(sheet.itertuples()):
        raw = folder / "fields" / f"{row.sample}.ome.zarr"
        ingest(row.path, raw, channel_names=row.channels.split(","), progress=False)
        well = ("A", "1") if i < 2 else ("B", "2")
        table.append({"row": well[0], "column": well[1], "field": str(i % 2), "image": raw})
    plate.write_plate(folder / "plate.zarr", pd.DataFrame(table), name="sim")
    return folder / "plate.zarr"


def test_plate_end_to_end(tmp_path):
    path = simulated_plate(tmp_path)
    write_config(
        tmp_path,
        input={"demo": None, "sheet": None, "glob": None, "plate": str(path)},
        tiles={"tile": 64, "halo": 8, "tiles_per_shard": 16},
        restore={**TINY["restore"], "enabled": False},
        classify={**TINY["classify"], "mode": "unsupervised", "labels": None},
    )
    snakemake(tmp_path)
    fields = pd.read_csv(tmp_path / "results/experiment/samples.tsv", sep="\t", dtype=str)
    assert sorted(fields["sample"]) == ["A01_0", "A01_1", "B02_0", "B02_1"]
    where = fields.set_index("sample")[["well", "row", "column", "field"]]
    assert where.loc["B02_1"].tolist() == ["B02", "B", "2", "1"]  # where each field sits
    wells = pd.read_csv(tmp_path / "results/experiment/wells.tsv", sep="\t", dtype={"column": str})
    objects = pd.read_parquet(tmp_path / "results/experiment/objects.parquet")
    nuclei = objects[objects["kind"] == "nucleus"].groupby("sample").size()
    assert list(wells["well"]) == ["A01", "B02"] and list(wells["fields"]) == [2, 2]
    assert wells["n_nucleus"].tolist() == [
        nuclei[["A01_0", "A01_1"]].sum(),
        nuclei[["B02_0", "B02_1"]].sum(),
    ]
    assert wells["n_nucleus"].min() > 0
    fractions = wells.filter(like="fraction_")
    assert fractions.shape[1] >= 2 and (fractions.sum(axis=1) - 1).abs().max() < 1e-9
    whole = pd.read_csv(tmp_path / "results/experiment/plate.tsv", sep="\t")
    assert whole["n_nucleus"].item() == wells["n_nucleus"].sum() and whole["fields"].item() == 4
    out = tmp_path / "results/experiment/plate.ome.zarr"
    plate.validate(out)
    back = sample_sheet.load({"plate": str(out)})
    assert list(back.index) == ["A01_0", "A01_1", "B02_0", "B02_1"]
    assert (out / "B" / "2" / "1" / "labels" / "nuclei").is_dir()
    assert (tmp_path / "results/report/plate.png").stat().st_size > 1000
