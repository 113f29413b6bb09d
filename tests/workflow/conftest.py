"""Real `snakemake` runs of the repository's Snakefile in a temporary working directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "input": {
        "demo": {"samples": 2, "shape": [96, 128], "photons": 30, "seed": 0, "pixel_size": 0.5},
        "sheet": None,
        "glob": None,
    },
    "ingest": {"chunk_bytes": 4096},
    # every sample on its own (shard jobs and gathers); test_batch.py runs the batches
    "batch": {"pixels": 0, "largest": 1},
    "tiles": {"tile": 32, "halo": 8, "tiles_per_shard": 4},
    "normalize": {"percentiles": [1.0, 99.8], "mode": "sample"},
    "restore": {
        "enabled": True,
        "train": True,
        "pairs": None,
        "training": {
            "init": "none",
            "width": 8,
            "depth": 2,
            "steps": 4,
            "batch": 2,
            "patch": 32,
            "lr": 0.001,
            "p_exact": 0.5,
            "seed": 0,
        },
        "inference": {"halo": 16, "batch": 8, "samples": 1, "seed": 0},
        "superres": {
            "enabled": False,
            "factor": 2,
            "psf_sigma": 1.0,
            "cond": "bicubic",
            "pairs": None,
            "training": {
                "width": 8,
                "depth": 2,
                "steps": 3,
                "batch": 2,
                "patch": 32,
                "lr": 0.001,
                "seed": 0,
            },
            "inference": {
                "halo": 8,
                "batch": 16,
                "sampler": "dpmpp_2m",
                "steps": 1,
                "samples": 1,
                "seed": 0,
            },
        },
    },
    "segment": {
        "enabled": True,
        "input": "raw",
        "kinds": ["nuclei", "cells"],
        "nuclei_channel": 0,
        "cytoplasm_channel": 1,
        "train": False,
        "pairs": None,
        "training": {"width": 8, "depth": 2, "steps": 3, "batch": 2, "patch": 32, "lr": 0.001},
        "samples": 2,
        "steps": 2,
        "sampler": "ddim",
        "seed": 0,
        "batch_size": 4,
        "threshold": 0.5,
        "seed_level": 0.5,
        "min_seed": 4,
        "min_size": 16,
        "match_iou": 0.5,
        "label_halo": 24,
        "cell_threshold": "auto",
        "cell_max_distance": 50,
        "cell_model": "none",  # the fallback (one network per shard); test_cells.py: shipped
    },
    "generate": {
        "enabled": False,
        "pairs": None,
        "channels": None,
        "classes": True,
        "train_segment": False,
        "ratio": 0.5,
        "training": {"width": 8, "depth": 2, "steps": 4, "batch": 2, "patch": 32, "lr": 0.001},
        "masks": {"density_scale": 1.0, "max_overlap": 0.0, "scale": [0.85, 1.15]},
        "output": {"pairs": 2, "shape": [48, 64], "sampler": "dpmpp_2m", "steps": 3, "batch": 2},
        "examples": 2,
    },
    "features": {"restored": False, "tile": 64, "neighbor_distance": 2.0, "texture_levels": 16},
    "classify": {
        "mode": "supervised",
        "labels": "data/demo/labels.tsv",
        "kind": "nucleus",
        "seed": 0,
        "supervised": {"n_splits": 2, "max_iter": 20},
        "unsupervised": {"k": None, "k_min": 2, "k_max": 3},
        "diffusion": {
            "crop": 16,
            "width": 8,
            "depth": 2,
            "steps": 30,
            "batch": 16,
            "lr": 0.002,
            "holdout": 0.5,
            "levels": 4,
            "sigma_min": 0.05,
            "sigma_max": 1.0,
            "trials": 1,
            "batch_eval": 64,
        },
    },
    "report": {"max_px": 128, "noise_px": 128, "features": 3},
    "resources": {
        "default": {"mem_mb": 1000, "runtime": 10, "threads": 1},
        "cpu_partition": None,
        "gpu_partition": None,
        "gpu_model": None,
    },
}


def write_config(workdir: Path, name: str = "config.yaml", **sections) -> Path:
    """Write the tiny config with whole sections replaced, e.g. tiles={...}."""
    cfg = {**TINY, **sections}
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path, *args: str, check: bool = True, config: str = "config.yaml"
) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in `workdir` with `workdir/config` as its config."""
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / config),
        "--cores", "2", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: rule -> count ({} when nothing is to be done)."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture
def workdir(tmp_path):
    write_config(tmp_path)
    return tmp_path


def spine_only() -> dict:
    """Sections that switch the diffusion stages off: the spine alone (and what it feeds)."""
    return {
        "restore": {**TINY["restore"], "enabled": False},
        "segment": {**TINY["segment"], "enabled": False},
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One full run of the tiny spine, shared by the tests of a module (they only dry-run it)."""
    wd = tmp_path_factory.mktemp("run")
    write_config(wd, **spine_only())
    proc = snakemake(wd)
    return wd, proc
