"""The restore stage in real snakemake runs: train once, rerun only what a change needs."""

import pytest
import zarr

from microdiff.io import ngff
from tests.workflow.conftest import TINY, job_counts, snakemake, write_config

TARGETS = ["results/demo01/restored.ome.zarr", "results/demo02/restored.ome.zarr"]


def _restore(**changes):
    """The tiny restore section with some keys (or sub-sections) replaced."""
    out = {**TINY["restore"]}
    for key, value in changes.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) else value
    return out


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    wd = tmp_path_factory.mktemp("restore")
    write_config(wd)
    proc = snakemake(wd, *TARGETS)
    return wd, proc


def test_restored_images_and_provenance(restored):
    wd, _ = restored
    for sample in ("demo01", "demo02"):
        path = wd / f"results/{sample}/restored.ome.zarr"
        ngff.validate(path)
        g = zarr.open_group(str(path), mode="r")
        raw = zarr.open_group(str(wd / f"results/{sample}/raw.ome.zarr"), mode="r")
        assert g["0"].shape == raw["0"].shape and g["0"].dtype == "float32"
        meta = g.attrs["microdiff"]
        assert meta["stage"] == "restore" and meta["model_hash"] and "SURE" in meta["model_mode"]
        assert meta["params"]["inference"] == TINY["restore"]["inference"]
        assert not (wd / f"results/{sample}/restore").exists() or not list(
            (wd / f"results/{sample}/restore").glob("shard-*.zarr")
        )  # shard stores are temporary
    assert (wd / "models/restore/config.json").is_file()
    assert (wd / "logs/train_restore/experiment.log").read_text().strip()


def test_rerun_does_nothing(restored):
    wd, _ = restored
    assert job_counts(snakemake(wd, "--dry-run", *TARGETS)) == {}


def test_inference_change_does_not_retrain(restored):
    wd, _ = restored
    write_config(wd, "changed.yaml", restore=_restore(inference={"samples": 2}))
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="changed.yaml"))
    assert "train_restore" not in jobs and jobs.get("restore_gather") == 2


def test_training_change_retrains_once(restored):
    wd, _ = restored
    write_config(wd, "changed.yaml", restore=_restore(training={"steps": 5}))
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="changed.yaml"))
    assert jobs.get("train_restore") == 1 and jobs.get("restore_gather") == 2


def test_disabled_stage_has_no_jobs(workdir):
    write_config(workdir, restore=_restore(enabled=False))
    jobs = job_counts(snakemake(workdir, "--dry-run"))
    assert not {"train_restore", "restore_shard", "restore_gather"} & set(jobs)
