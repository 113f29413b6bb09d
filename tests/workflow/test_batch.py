"""Batches of small samples: one job per stage and batch writes what one job per sample would.

An experiment of three small images and one larger one (a sample sheet). With `batch.pixels`
set so that two small images fit a batch, the small ones go through the batch rules (b001: the
first two, b002: the third) and the large one through the per-sample rules and their shards;
everything written must equal a run with batches off, file by file. Appending a sample to the
sheet changes only the last batch.
"""

from __future__ import annotations

import pandas as pd
import pytest

from microdiff.simulate import write_experiment
from tests.cluster.outputs import compare_runs
from tests.workflow.conftest import TINY, job_counts, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SMALL = tuple(TINY["input"]["demo"]["shape"])  # 96 x 128 = 12,288 pixels
LARGE = (128, 160)  # 20,480 pixels: over `largest`, in no batch
BATCHED = {"pixels": 25000, "largest": 16000}
UNBATCHED = {"pixels": 0, "largest": 1}


def _inputs(wd, n_small: int = 4) -> None:
    """input/three.tsv (s01-s03, big01), input/four.tsv (s04 appended)."""
    small = pd.read_csv(write_experiment(wd / "input", n_small, SMALL, prefix="s"), sep="\t")
    big = pd.read_csv(write_experiment(wd / "input/big", 1, LARGE, prefix="big"), sep="\t")
    big["path"] = "big/" + big["path"]
    pd.concat([small.head(3), big]).to_csv(wd / "input/three.tsv", sep="\t", index=False)
    pd.concat([small.head(3), big, small.tail(1)]).to_csv(
        wd / "input/four.tsv", sep="\t", index=False
    )


def _config(wd, batch: dict, sheet="input/three.tsv", name="config.yaml") -> None:
    write_config(
        wd,
        name,
        input={"demo": None, "sheet": sheet, "glob": None},
        batch=batch,
        classify={**TINY["classify"], "mode": "unsupervised", "labels": None},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, batch in (("batched", BATCHED), ("alone", UNBATCHED)):
        wd = tmp_path_factory.mktemp(name)
        _inputs(wd)
        _config(wd, batch)
        out[name] = (wd, snakemake(wd))
    return out


def test_batches_write_what_per_sample_jobs_write(runs):
    (batched, proc), (alone, _) = runs["batched"], runs["alone"]
    log = proc.stdout + proc.stderr
    for rule in ("ingest_b001", "ingest_b002", "segment_b001", "restore_b002", "features_b001"):
        assert f"rule {rule}:" in log, rule
    # the large sample alone: its own ingest and shard jobs; no small sample has any
    assert "segment_shard" in log and (batched / "logs/segment_shard").is_dir()
    assert {p.name for p in (batched / "logs/ingest").iterdir()} == {"big01.log"}
    batch_log = (batched / "logs/segment_batch/b001.log").read_text()
    assert "s01 (1 of 2)" in batch_log and "s02 (2 of 2)" in batch_log
    assert compare_runs(batched, alone) == []
    assert job_counts(snakemake(batched, "--dry-run")) == {}


def test_appended_sample_reruns_only_the_last_batch(runs):
    wd, _ = runs["batched"]
    _config(wd, BATCHED, sheet="input/four.tsv", name="four.yaml")
    jobs = job_counts(snakemake(wd, "--dry-run", config="four.yaml"))
    # s04 joins b002 (s03 + s04 fit 25,000 pixels): b002's jobs run again, b001's do not
    for stage in ("ingest", "tiles", "normalize", "segment", "features"):
        assert jobs.get(f"{stage}_b002") == 1, (stage, jobs)
        assert f"{stage}_b001" not in jobs, (stage, jobs)
    assert "ingest" not in jobs and "segment_shard" not in jobs  # nor the large sample's


def test_changed_parameter_reruns_that_stage_of_every_batch_and_after(runs):
    """A stage's parameter reruns that stage and what follows for every sample, batched or not,
    exactly as forcing the stage's rules would, and nothing before it."""
    wd, _ = runs["batched"]
    forced = job_counts(
        snakemake(wd, "--dry-run", "--forcerun", "normalize_b001", "normalize_b002", "normalize")
    )
    write_config(
        wd, "percentiles.yaml",
        input={"demo": None, "sheet": "input/three.tsv", "glob": None},
        batch=BATCHED,
        classify={**TINY["classify"], "mode": "unsupervised", "labels": None},
        normalize={**TINY["normalize"], "percentiles": [2.0, 99.0]},
    )  # fmt: skip
    jobs = job_counts(snakemake(wd, "--dry-run", config="percentiles.yaml"))
    assert jobs == forced
    assert jobs["normalize_b001"] == jobs["normalize_b002"] == jobs["normalize"] == 1, jobs
    assert not any(rule.startswith(("ingest", "tiles")) for rule in jobs), jobs


def test_changed_input_reruns_only_its_batch(runs):
    """New pixels in one sample's image file (s03, in b002) rerun exactly what forcing its
    batch's ingest would: b002 and what follows from it (the restore model is fitted to every
    sample, so the others' restoration and what follows run again, as for an added sample),
    never another batch's or the large sample's ingest, tiles or statistics. (A file only
    touched is not a change: Snakemake compares the checksums of small inputs.)"""
    import shutil

    wd, _ = runs["batched"]
    forced = job_counts(snakemake(wd, "--dry-run", "--forcerun", "ingest_b002"))
    images = wd / "input/images"
    shutil.copyfile(images / "s04.ome.tif", images / "s03.ome.tif")  # s04: not in three.tsv
    jobs = job_counts(snakemake(wd, "--dry-run"))
    assert jobs == forced
    for stage in ("ingest", "tiles", "normalize"):
        assert jobs.get(f"{stage}_b002") == 1, (stage, jobs)
        assert f"{stage}_b001" not in jobs and stage not in jobs, (stage, jobs)
