"""The SLURM profile and the local SLURM, proven on a throwaway two-rule Snakefile.

A real `snakemake --profile workflow/profiles/slurm` run submits one CPU job and one GPU job to
the harness's SLURM. The test then asks the scheduler (`scontrol show job`, kept by MinJobAge)
what each job requested: the GPU rule's job a GPU (`TresPerJob=gres:gpu:1`), the CPU rule's job
none; and inside the GPU job SLURM set `CUDA_VISIBLE_DEVICES` (the job writes it to its output).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "workflow" / "profiles" / "slurm"

SNAKEFILE = """\
rule all:
    input: "cpu.txt", "gpu.txt"

rule cpu_step:
    output: "cpu.txt"
    shell: "echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}} > {output}"

rule gpu_step:
    output: "gpu.txt"
    resources: gpu=1, slurm_partition="debug"
    shell: "echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}} > {output}"
"""

GPU_FIELDS = ("TresPerJob", "TresPerNode", "TresPerTask", "TresPerSocket", "Gres", "TRES")


def _gpu_request(job: dict[str, str]) -> str:
    """The GPU part of a job's request, or "" (fields differ between SLURM versions)."""
    return " ".join(f"{k}={job[k]}" for k in GPU_FIELDS if "gpu" in job.get(k, ""))


def _slurm_logs(workdir: Path) -> str:
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)


def test_profile_runs_cpu_and_gpu_rules_through_slurm(slurm, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    # The job step runs `python -m snakemake` from the environment the jobs inherit
    # (sbatch --export=ALL): put this virtualenv's bin first on PATH.
    env = slurm.env(extra_path=Path(sys.executable).parent)
    env.pop("MICRODIFF_SLURM_PARTITION", None)  # CPU jobs: the cluster's default partition
    env.pop("CUDA_VISIBLE_DEVICES", None)  # only SLURM may set it
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(PROFILE),
        "--directory",
        str(tmp_path),
        "--snakefile",
        str(tmp_path / "Snakefile"),
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - t0
    print(f"\nsnakemake through SLURM (2 jobs): {wall:.1f} s")
    assert proc.returncode == 0, (
        f"snakemake exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n"
        f"{_slurm_logs(tmp_path)}\n{slurm.logs_tail()}"
    )

    # Outputs exist; SLURM gave the GPU job a device and the CPU job none.
    gpu_env = (tmp_path / "gpu.txt").read_text().strip()
    cpu_env = (tmp_path / "cpu.txt").read_text().strip()
    assert gpu_env in {f"CUDA_VISIBLE_DEVICES={i}" for i in range(slurm.gpus)}, gpu_env
    assert cpu_env in ("CUDA_VISIBLE_DEVICES=unset", "CUDA_VISIBLE_DEVICES="), cpu_env

    # What was requested, from the scheduler: this run's jobs, by rule (the plugin's comment).
    jobs = [j for j in slurm.jobs() if j.get("WorkDir") == str(tmp_path)]
    by_rule = {j.get("Comment", "").split()[0]: j for j in jobs if j.get("Comment")}
    assert sorted(by_rule) == ["rule_cpu_step", "rule_gpu_step"], jobs
    gpu_job, cpu_job = by_rule["rule_gpu_step"], by_rule["rule_cpu_step"]
    for job in (gpu_job, cpu_job):
        assert job["JobState"] == "COMPLETED", job
        assert job["Partition"] == slurm.partition, job
    # --gpus=1 shows as TresPerJob=gres:gpu:1. (TRES lists only cpu/mem/node: tracking gres/gpu
    # there needs slurmdbd; the allocation itself shows in CUDA_VISIBLE_DEVICES above.)
    assert "gpu" in gpu_job.get("TresPerJob", "") + gpu_job.get("TresPerNode", ""), gpu_job
    assert _gpu_request(cpu_job) == "", cpu_job
    for name, job in (("GPU", gpu_job), ("CPU", cpu_job)):
        print(
            f"{name} job {job['JobId']}: submitted {job.get('SubmitTime')}, "
            f"ran {job.get('StartTime')} .. {job.get('EndTime')}, TRES={job.get('TRES')}, "
            f"GPU request: {_gpu_request(job) or 'none'}"
        )
