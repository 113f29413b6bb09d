"""The workflow spine on the tiny demo: job list, full run, reruns of only what changed."""

import json

import pandas as pd
import zarr

from microdiff.io import ngff
from tests.workflow.conftest import TINY, job_counts, snakemake, spine_only, write_config

SPINE = {"simulate_demo": 1, "ingest": 2, "tiles": 2, "normalize": 2, "sample_table": 1, "all": 1}


def _changed(wd, section: str, **changes) -> str:
    """A config file beside the run's own, with one section changed; returns its name."""
    write_config(wd, "changed.yaml", **spine_only(), **{section: {**TINY[section], **changes}})
    return "changed.yaml"


def test_dry_run_job_list(workdir):
    write_config(workdir, **spine_only())
    assert job_counts(snakemake(workdir, "--dry-run")) == SPINE


def test_dry_run_job_list_of_every_stage(workdir):
    # shard jobs of restore and segment appear once the tile-plan checkpoint has run
    assert job_counts(snakemake(workdir, "--dry-run")) == {
        **SPINE, "train_restore": 1, "restore_gather": 2, "segment_gather": 2, "features": 2,
        "features_experiment": 1, "demo_labels": 1, "classify": 1, "report_montage": 2,
        "report_normalization": 1, "report_classes": 1, "report_qc": 1, "report_config": 1,
        "report_runtime": 1,
    }  # fmt: skip


def test_full_run_outputs(finished_run):
    wd, _ = finished_run
    table = pd.read_csv(wd / "results/experiment/samples.tsv", sep="\t")
    assert list(table["sample"]) == ["demo01", "demo02"]
    assert (table["channels"] == "nuclei,cytoplasm").all()
    assert (table["shape"] == "2x96x128").all() and (table["pixel_size_um"] == 0.5).all()
    for sample in ("demo01", "demo02"):
        raw = wd / f"results/{sample}/raw.ome.zarr"
        ngff.validate(raw)
        assert zarr.open_group(str(raw), mode="r")["0"].shape == (2, 96, 128)
        plan = pd.read_parquet(wd / f"results/{sample}/tiles.parquet")
        # 4 KB uint16 chunks are 32 x 64, so 32-pixel tiles widen to 32 x 64: 3 x 2 tiles, 4 a shard
        assert len(plan) == 6 and plan["shard"].nunique() == 2
        norm = json.loads((wd / f"results/{sample}/norm.json").read_text())
        assert norm["percentiles"] == [1.0, 99.8] and len(norm["channels"]) == 2
        assert (wd / f"logs/ingest/{sample}.log").read_text().strip()
        assert (wd / f"benchmarks/ingest/{sample}.tsv").exists()
    assert not list(wd.glob("results/**/.*.tmp-*"))  # no temporary siblings left


def test_second_run_does_nothing(finished_run):
    wd, _ = finished_run
    assert job_counts(snakemake(wd, "--dry-run")) == {}


def test_percentile_change_reruns_normalize_and_after_only(finished_run):
    wd, _ = finished_run
    jobs = job_counts(
        snakemake(wd, "--dry-run", config=_changed(wd, "normalize", percentiles=[2, 99]))
    )
    assert jobs == {"normalize": 2, "sample_table": 1, "all": 1}


def test_tile_change_reruns_tiles_and_after_only(finished_run):
    wd, _ = finished_run
    jobs = job_counts(snakemake(wd, "--dry-run", config=_changed(wd, "tiles", tile=64)))
    assert jobs == {"tiles": 2, "sample_table": 1, "all": 1}


def test_experiment_mode_pools_statistics(finished_run):
    wd, _ = finished_run
    jobs = job_counts(
        snakemake(wd, "--dry-run", config=_changed(wd, "normalize", mode="experiment"))
    )
    # per-sample histograms are reused; only the pooled statistics and what follows are new
    assert jobs == {"normalize": 2, "normalize_experiment": 1, "sample_table": 1, "all": 1}
