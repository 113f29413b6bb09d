"""A blood smear through the whole workflow: RGB JPEGs in a sample sheet, cells segmented on a
bright background (`segment.method: bright`, non-diffusion and said so), classes from a points
table, `classes.parquet` and the per-sample summaries out."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tifffile
import zarr

from microdiff.io import ngff
from microdiff.io.labels import validate_labels
from microdiff.metrics import average_precision
from microdiff.segment.bright import METHOD
from microdiff.simulate.smear import write_smear_experiment
from tests.workflow.conftest import TINY, snakemake, write_config

SAMPLES = ("smear01", "smear02")


@pytest.fixture(scope="module")
def smear_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("smear")
    write_smear_experiment(wd / "data", n_samples=2, shape=(256, 256), n_cells=30, seed=3)
    bright = {"channel": None, "smooth": 1.0, "min_size": 40, "footprint": 9, "min_radius": 4.0}
    write_config(
        wd,
        input={"demo": None, "sheet": "data/samples.tsv", "glob": None},
        tiles={"tile": 128, "halo": 16, "tiles_per_shard": 4},
        restore={**TINY["restore"], "enabled": False},
        segment={**TINY["segment"], "method": "bright", "bright": bright},
        classify={**TINY["classify"], "labels": "data/points.tsv", "kind": "cell"},
    )
    proc = snakemake(wd)
    return wd, proc


def test_cells_on_a_bright_background_say_they_are_not_diffusion(smear_run):
    wd, proc = smear_run
    assert not list(wd.glob("logs/segment_shard/*.log"))  # no network ran
    for s in SAMPLES:
        store = wd / f"results/{s}/segmentation.ome.zarr"
        ngff.validate(store)
        assert validate_labels(store) == ["cells"]
        root = zarr.open_group(str(store), mode="r")
        assert root.attrs["microdiff"]["method"] == {"cells": METHOD}
        assert "non-diffusion" in METHOD
        meta = json.loads(
            pq.read_schema(wd / f"results/{s}/segments.parquet").metadata[b"microdiff"]
        )
        assert meta["method"] == {"cells": METHOD}
        assert "no diffusion model" in (wd / f"logs/segment_bright/{s}.log").read_text()
        truth = tifffile.imread(wd / f"data/truth/{s}_cells.tif")
        assert average_precision(truth, root["labels/cells/0"][:])[0] >= 0.9


def test_classes_from_points_and_summaries(smear_run):
    wd, _ = smear_run
    classes = pd.concat(pd.read_parquet(wd / f"results/{s}/classes.parquet") for s in SAMPLES)
    assert set(classes["kind"]) == {"cell"}
    assert set(classes["class"]) <= {"normal", "spherocyte", "elliptocyte"}
    points = pd.read_csv(wd / "data/points.tsv", sep="\t")
    # each point's cell got a class; the shapes are easy, so most are the annotated one
    right = 0
    for s in SAMPLES:
        lab = zarr.open_group(str(wd / f"results/{s}/segmentation.ome.zarr"), mode="r")
        lab = lab["labels/cells/0"][:]
        pts = points[points["sample"] == s]
        ids = lab[np.rint(pts["y"]).astype(int), np.rint(pts["x"]).astype(int)]
        got = classes[classes["sample"] == s].set_index("id")["class"]
        right += sum(got.get(i) == c for i, c in zip(ids, pts["class"]))
    assert right >= 0.8 * len(points)
    summary = pd.read_csv(wd / "results/experiment/class_counts.tsv", sep="\t")
    assert set(summary["sample"]) == set(SAMPLES)
