"""The generate stage in real snakemake runs: synthetic pairs from the demo's annotations, the
report figure, and the segment trainer taking the pairs only when the config says so."""

import json

import numpy as np
import pandas as pd
import pytest
import zarr

from microdiff.io import ngff
from microdiff.io.labels import validate_labels
from microdiff.provenance import read_table_provenance
from tests.workflow.conftest import TINY, job_counts, snakemake, write_config

GEN = {**TINY["generate"], "enabled": True}
SEG = {**TINY["segment"], "train": True, "kinds": ["nuclei"]}
MODEL = "models/segment_nuclei/config.json"
TARGETS = ["results/synthetic/manifest.parquet", "results/synthetic/examples.png", MODEL]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    wd = tmp_path_factory.mktemp("generate")
    write_config(wd, generate=GEN, segment=SEG)
    proc = snakemake(wd, *TARGETS)
    return wd, proc


def _dry(wd, **gen):
    """Jobs a dry run of all three targets would run with the generate section changed."""
    write_config(wd, "changed.yaml", generate={**GEN, **gen}, segment=SEG)
    return job_counts(snakemake(wd, "--dry-run", *TARGETS, config="changed.yaml"))


def test_jobs_of_a_run(generated):
    _, proc = generated
    jobs = job_counts(proc)
    for rule in ("train_generate", "generate_pairs", "generate_examples", "train_segment"):
        assert jobs[rule] == 1


def test_pairs_manifest_and_figure(generated):
    wd, _ = generated
    manifest = wd / "results/synthetic/manifest.parquet"
    table = pd.read_parquet(manifest)
    assert list(table["pair"]) == [0, 1]
    prov = read_table_provenance(manifest)
    assert prov["stage"] == "generate" and prov["params"]["pairs"] == 2
    model_cfg = json.loads((wd / "models/generate/config.json").read_text())
    assert prov["model_hash"] == model_cfg["params_hash"] and model_cfg["task"] == "generate"
    assert model_cfg["generate"]["n_classes"] == 2  # the demo's truth has two phenotypes
    for row in table.itertuples():
        store = manifest.parent / row.path
        ngff.validate(store)
        assert validate_labels(store) == ["nuclei"]
        g = zarr.open_group(str(store), mode="r")
        assert g["0"].shape == (1, 48, 64) and g["0"].dtype == np.float32
        assert g["labels/nuclei/0"].dtype == np.int32
        assert int(g["labels/nuclei/0"][...].max()) == row.n_objects == len(row.classes)
    assert (wd / "results/synthetic/examples.png").stat().st_size > 1000
    assert (wd / "logs/generate_pairs/pairs.log").read_text().strip()


def test_segment_trains_on_real_pairs_only_when_off(generated):
    wd, _ = generated
    cfg = json.loads((wd / MODEL).read_text())
    assert cfg["synthetic"] is None


def test_switching_the_mix_on_retrains_segmentation_only(generated):
    wd, _ = generated
    # the generate stage's own outputs depend on neither the switch nor the ratio
    assert _dry(wd, train_segment=True, ratio=0.2) == {"train_segment": 1}


def test_generate_changes_rerun_what_follows_only(generated):
    wd, _ = generated
    out = {**GEN["output"], "pairs": 3}
    jobs = _dry(wd, output=out)  # the mix is off: segmentation does not read the pairs
    assert jobs == {"generate_pairs": 1, "generate_examples": 1}
    jobs = _dry(wd, train_segment=True, output=out)
    assert jobs == {"generate_pairs": 1, "generate_examples": 1, "train_segment": 1}
    jobs = _dry(wd, training={**GEN["training"], "steps": 5})
    assert jobs == {"train_generate": 1, "generate_pairs": 1, "generate_examples": 1}


def test_segment_trainer_reads_the_pairs_when_on(generated):
    wd, _ = generated
    before = json.loads((wd / MODEL).read_text())
    write_config(wd, "mixed.yaml", generate={**GEN, "train_segment": True, "ratio": 0.5},
                 segment=SEG)  # fmt: skip
    jobs = job_counts(snakemake(wd, MODEL, config="mixed.yaml"))
    assert jobs == {"train_segment": 1}
    after = json.loads((wd / MODEL).read_text())
    assert after["synthetic"] == {"manifest": "results/synthetic/manifest.parquet", "ratio": 0.5}
    assert after["data_hash"] != before["data_hash"]  # trained on a different patch source
