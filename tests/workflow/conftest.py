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
    "tiles": {"tile": 32, "halo": 8, "tiles_per_shard": 4},
    "normalize": {"percentiles": [1.0, 99.8], "mode": "sample"},
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


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One full run of the tiny demo, shared by the tests of a module (they only dry-run it)."""
    wd = tmp_path_factory.mktemp("run")
    write_config(wd)
    proc = snakemake(wd)
    return wd, proc
