"""Super-resolution in real snakemake runs: x2 outputs, train once, inference changes never
retrain, the input follows restore.enabled."""

import pytest
import zarr

from microdiff.io import ngff
from tests.workflow.conftest import TINY, job_counts, snakemake, write_config

TARGETS = ["results/demo01/superres.ome.zarr", "results/demo02/superres.ome.zarr"]
TILES = {"tile": 64, "halo": 8, "tiles_per_shard": 4}  # one shard per sample: fewer jobs
SR_RULES = {"train_superres", "superres_shard", "superres_gather"}


def _restore(enabled=False, **sr):
    """The tiny restore section (denoising on or off) with SR enabled and some keys replaced."""
    out = {**TINY["restore"], "enabled": enabled}
    sup = {**out["superres"], "enabled": True}
    for key, value in sr.items():
        sup[key] = {**sup[key], **value} if isinstance(value, dict) else value
    return {**out, "superres": sup}


@pytest.fixture(scope="module")
def superres(tmp_path_factory):
    wd = tmp_path_factory.mktemp("superres")
    write_config(wd, restore=_restore(), tiles=TILES)
    proc = snakemake(wd, *TARGETS)
    return wd, proc


def test_x2_images_scale_and_provenance(superres):
    wd, _ = superres
    for sample in ("demo01", "demo02"):
        path = wd / f"results/{sample}/superres.ome.zarr"
        ngff.validate(path)
        g = zarr.open_group(str(path), mode="r")
        raw = zarr.open_group(str(wd / f"results/{sample}/raw.ome.zarr"), mode="r")
        c, y, x = raw["0"].shape
        assert g["0"].shape == (c, 2 * y, 2 * x) and g["0"].dtype == "float32"
        sc = [
            t["scale"]
            for t in g.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
        ][0]
        raw_sc = raw.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]
        assert sc == [1.0, raw_sc["scale"][1] / 2, raw_sc["scale"][2] / 2]
        meta = g.attrs["microdiff"]
        assert meta["stage"] == "superres" and meta["factor"] == 2 and meta["model_hash"]
        assert meta["inputs"] == [f"results/{sample}/raw.ome.zarr"]  # restore is disabled
        assert meta["params"]["inference"] == TINY["restore"]["superres"]["inference"]
        assert not list((wd / f"results/{sample}/superres").glob("shard-*.zarr"))
    assert (wd / "models/superres/config.json").is_file()
    assert "train_superres: done" in (wd / "logs/train_superres/experiment.log").read_text()


def test_rerun_does_nothing(superres):
    wd, _ = superres
    assert job_counts(snakemake(wd, "--dry-run", *TARGETS)) == {}


def test_inference_change_does_not_retrain(superres):
    wd, _ = superres
    change = {"steps": 3, "samples": 2, "sampler": "ddim"}
    write_config(wd, "changed.yaml", restore=_restore(inference=change), tiles=TILES)
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="changed.yaml"))
    assert "train_superres" not in jobs and jobs.get("superres_gather") == 2


def test_training_change_retrains_once(superres):
    wd, _ = superres
    write_config(wd, "changed.yaml", restore=_restore(factor=4), tiles=TILES)
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="changed.yaml"))
    assert jobs.get("train_superres") == 1 and jobs.get("superres_gather") == 2


def test_reads_restored_when_restore_is_enabled(superres):
    wd, _ = superres
    write_config(wd, "changed.yaml", restore=_restore(enabled=True), tiles=TILES)
    proc = snakemake(wd, "--dry-run", "--forceall", *TARGETS, config="changed.yaml")
    jobs = job_counts(proc)
    assert jobs.get("restore_gather") == 2 and jobs.get("train_superres") == 1


def test_disabled_by_default_has_no_jobs(workdir):
    jobs = job_counts(snakemake(workdir, "--dry-run"))
    assert jobs and not SR_RULES & set(jobs)
