"""The segment stage in real snakemake runs: training from the demo's truth, shard jobs, the
gather's NGFF labels and object table, and what reruns after a parameter change."""

import numpy as np
import pandas as pd
import pytest
import zarr

from microdiff.io import ngff
from microdiff.io.labels import validate_labels
from tests.workflow.conftest import TINY, job_counts, snakemake, write_config

TARGETS = [f"results/{s}/{n}" for s in ("demo01", "demo02")
           for n in ("segmentation.ome.zarr", "segments.parquet")]  # fmt: skip
TRAIN = {**TINY["segment"], "train": True}


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    wd = tmp_path_factory.mktemp("segment")
    write_config(wd, segment=TRAIN)
    proc = snakemake(wd, *TARGETS)
    return wd, proc


def test_jobs_of_a_trained_run(segmented):
    wd, proc = segmented
    logs = {r: len(list(wd.glob(f"logs/{r}/*.log")))
            for r in ("train_segment", "segment_shard", "segment_gather")}  # fmt: skip
    # 96 x 128 images in 32 x 64 tiles, 4 tiles a shard: 2 shards per sample
    assert logs == {"train_segment": 1, "segment_shard": 4, "segment_gather": 2}
    assert (wd / "models/segment_nuclei/weights.pt").exists()
    assert not list(wd.glob("results/*/segment_shards/*.zarr"))  # temporary, removed
    assert (wd / "logs/segment_gather/demo01.log").read_text().strip()


def test_outputs_validate_and_cells_link_to_nuclei(segmented):
    wd, _ = segmented
    for s in ("demo01", "demo02"):
        out = wd / f"results/{s}/segmentation.ome.zarr"
        ngff.validate(out)
        assert validate_labels(out) == ["nuclei", "cells"]
        root = zarr.open_group(str(out), mode="r")
        assert [c["label"] for c in root.attrs["omero"]["channels"]] == [
            "nuclei_prob", "nuclei_std", "cells_prob", "cells_std"]  # fmt: skip
        assert root.attrs["microdiff"]["method"] == {"nuclei": "diffusion", "cells": "diffusion"}
        nuc, cell = root["labels/nuclei/0"][:], root["labels/cells/0"][:]
        assert nuc.dtype == np.int32 and nuc.shape == (96, 128)
        assert (cell[nuc > 0] == nuc[nuc > 0]).all()
        table = pd.read_parquet(wd / f"results/{s}/segments.parquet")
        for col in ("kind", "id", "uncertainty", "consistency", "area", "centroid_y"):
            assert col in table.columns
        n = table[table["kind"] == "nuclei"]
        assert sorted(n["id"]) == sorted(set(np.unique(nuc)) - {0})
        assert n["consistency"].between(0, 1).all() and (n["uncertainty"] >= 0).all()


def test_inference_change_reruns_segmentation_not_training(segmented):
    wd, _ = segmented
    write_config(wd, "changed.yaml", segment={**TRAIN, "samples": 3})
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="changed.yaml"))
    assert jobs == {"segment_shard": 4, "segment_gather": 2}


def test_default_model_needs_no_training(segmented):
    wd, _ = segmented
    write_config(wd, "default.yaml")
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="default.yaml"))
    assert "train_segment" not in jobs and jobs["segment_gather"] == 2


def test_shipped_fast_model_is_the_distilled_student(tmp_path):
    """`segment.shipped: nuclei_fast` segments with the one-step student (its hash in the
    provenance) and, sampled at the step count it was distilled for, warns of nothing."""
    import json

    from microdiff.shipped import SEGMENT_NUCLEI_FAST

    fast = {**TINY["segment"], "shipped": "nuclei_fast", "steps": 1}
    write_config(tmp_path, segment=fast)
    snakemake(tmp_path, *TARGETS)
    cfg = json.loads((SEGMENT_NUCLEI_FAST / "config.json").read_text())
    assert cfg["distilled"]["student_steps"] == 1
    root = zarr.open_group(str(tmp_path / "results/demo01/segmentation.ome.zarr"), mode="r")
    assert root.attrs["microdiff"]["model_hash"] == cfg["params_hash"]
    logs = "".join(p.read_text() for p in tmp_path.glob("logs/segment_shard/*.log"))
    assert "1 steps" in logs and "distilled for" not in logs
    write_config(tmp_path, "two.yaml", segment={**fast, "steps": 2})
    snakemake(tmp_path, *TARGETS, "--forcerun", "segment_shard", config="two.yaml")
    logs = "".join(p.read_text() for p in tmp_path.glob("logs/segment_shard/*.log"))
    assert "distilled for 1 step(s), sampled here with 2" in logs


def test_restored_input_when_asked_and_restore_enabled(segmented):
    wd, _ = segmented
    write_config(wd, "restored.yaml", segment={**TRAIN, "input": "restored"})
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="restored.yaml"))
    assert jobs.get("train_restore") == 1 and jobs["segment_gather"] == 2
    off = {**TINY["restore"], "enabled": False}
    write_config(wd, "raw.yaml", segment={**TRAIN, "input": "restored"}, restore=off)
    jobs = job_counts(snakemake(wd, "--dry-run", *TARGETS, config="raw.yaml"))
    assert "train_restore" not in jobs and jobs["segment_gather"] == 2
