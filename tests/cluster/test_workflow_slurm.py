"""The tiny workflow through the SLURM profile on the local SLURM, against a local run.

One module-scoped run each: the repository's Snakefile on the tiny config (tests/workflow's
TINY) locally with `--cores`, and through `--profile workflow/profiles/slurm` on the harness's
cluster, with the config's partitions and GPU type set to the cluster's (`gpu_partition: gpu`,
`gpu_model: fake`). Then:

- every output of the local run exists in the SLURM run and equals it (`outputs.compare_runs`:
  pixel data and tables exactly; provenance timestamps aside);
- every SLURM job of the run: the jobs whose rules the workflow tagged for a GPU (the resources
  Snakemake printed for them) asked the scheduler for one of the configured type on the GPU
  partition (`TresPerJob`, from `scontrol show job`), every other job asked for none and ran on
  the CPU partition; whatever the set of GPU rules is;
- the profile's groups worked: the per-sample CPU rules ran as one submission per group of
  samples, not one per job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.conftest import REPO, TINY, snakemake, write_config

from . import snakelog
from .outputs import compare_runs, output_files

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PROFILE = REPO / "workflow" / "profiles" / "slurm"


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(none)"


_FAILED: dict[str, str] = {}  # a failed run fails every test once, without running again


@pytest.fixture(scope="module")
def runs(slurm, tmp_path_factory):
    if "runs" in _FAILED:
        pytest.fail(_FAILED["runs"], pytrace=False)
    try:
        return _runs(slurm, tmp_path_factory)
    except AssertionError as exc:
        _FAILED["runs"] = f"(from the module's first test) {str(exc)[-6000:]}"
        raise


def _runs(slurm, tmp_path_factory):
    local = tmp_path_factory.mktemp("local")
    cluster = tmp_path_factory.mktemp("slurm")
    write_config(local)
    resources = {
        **TINY["resources"],
        "cpu_partition": slurm.partition,
        "gpu_partition": slurm.gpu_partition,
        "gpu_model": "fake",
    }
    write_config(cluster, resources=resources)

    t0 = time.monotonic()
    snakemake(local)
    wall_local = time.monotonic() - t0

    # Jobs inherit the submitting environment (sbatch --export=ALL): this virtualenv first on
    # PATH so the job step finds `python -m snakemake`; no GPU unless SLURM gives one.
    env = slurm.env(extra_path=Path(sys.executable).parent)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("MICRODIFF_SLURM_PARTITION", None)
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", str(PROFILE),
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(cluster),
        "--configfile", str(cluster / "config.yaml"),
        "--cores", str(os.cpu_count()),  # a group job must fit the one node
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    wall_slurm = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"snakemake through SLURM exited {proc.returncode}\n{text[-8000:]}\n{slurm.logs_tail()}"
    )
    sched = [j for j in slurm.jobs() if j.get("WorkDir") == str(cluster)]
    print(
        f"\ntiny workflow: local {wall_local:.1f} s, through SLURM {wall_slurm:.1f} s "
        f"({len(sched)} SLURM jobs for {len(snakelog.jobs(text)) - 1} Snakemake jobs)"
    )
    return {"local": local, "cluster": cluster, "log": text, "sched": sched}


def test_slurm_outputs_equal_local(runs):
    local, cluster = runs["local"], runs["cluster"]
    files = output_files(local)
    assert any(f.startswith("results/") for f in files), files
    problems = compare_runs(local, cluster)
    assert problems == [], "\n".join(problems[:50])


def test_gpu_rules_and_only_they_request_a_gpu(runs, slurm):
    jobs = [j for j in snakelog.jobs(runs["log"]) if not j.local]
    gpu_of_rule: dict[str, int] = {}
    for job in jobs:
        assert gpu_of_rule.setdefault(job.rule, job.gpus) == job.gpus, f"{job.rule}: mixed"
    groups = set(_profile().get("groups", {}).values())
    submitted = snakelog.submissions(runs["log"])
    sched = runs["sched"]
    assert sorted(j["JobId"] for j in sched) == sorted(submitted), (sched, submitted)

    seen_gpu = seen_cpu = 0
    for job in sched:
        assert job["JobState"] == "COMPLETED", job
        rules = snakelog.rules_of_comment(job["Comment"], set(gpu_of_rule), groups)
        wants_gpu = any(gpu_of_rule[r] for r in rules)
        tres = job.get("TresPerJob", "") + job.get("TresPerNode", "")
        if wants_gpu:
            seen_gpu += 1
            assert len(rules) == 1, f"a GPU rule was grouped with others: {rules}"
            assert tres == "gres:gpu:fake:1", (rules, job)
            assert job["Partition"] == slurm.gpu_partition, (rules, job)
        else:
            seen_cpu += 1
            assert "gpu" not in tres and "gpu" not in job.get("Gres", ""), (rules, job)
            assert job["Partition"] == slurm.partition, (rules, job)
    assert seen_cpu > 0
    gpu_rules = sorted(r for r, n in gpu_of_rule.items() if n)
    print(f"\nGPU jobs {seen_gpu} (rules {gpu_rules}), CPU jobs {seen_cpu}")
    # Where the workflow has GPU-tagged rules, they ran through SLURM with their GPU; the GPU
    # side of the profile is also proven on its own by test_slurm_harness.
    assert (seen_gpu > 0) == bool(gpu_rules)


def test_small_cpu_jobs_are_grouped(runs):
    profile = _profile()
    groups, components = profile["groups"], profile["group-components"]
    submitted = snakelog.submissions(runs["log"])
    prep = [log for _, log in submitted.values() if "/group_prep_" in log]
    samples = TINY["input"]["demo"]["samples"]
    assert len(prep) == -(-samples // components["prep"]), submitted
    rules = {r for r, g in groups.items() if g == "prep"}
    singles = [log for _, log in submitted.values() if any(f"/rule_{r}/" in log for r in rules)]
    assert singles == [], f"per-sample CPU jobs submitted one by one: {singles}"
