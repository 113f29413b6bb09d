"""Reruns on a finished run of the tiny workflow: exactly what changed runs again.

The module's run uses a sample sheet (three simulated images, the sheet naming two), so adding a
sample is adding a row, and a copy of the workflow (Snakefile, rules, scripts), so a test can edit
a script. What a change must rerun is "that stage and everything downstream of it": Snakemake's
`--forcerun <rule>` dry run of the unchanged run lists exactly that set, whatever stages the
workflow has, and each change's dry run must list the same jobs (and none upstream).

The kill test: a run is SIGKILLed while ingest writes its store; no half-written store is ever
taken as done, and `--rerun-incomplete` finishes with outputs equal to an uninterrupted run's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from microdiff.io import ngff
from microdiff.simulate import write_experiment
from tests.cluster import snakelog
from tests.cluster.outputs import compare_runs
from tests.workflow.conftest import REPO, TINY, job_counts, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "scripts", "envs")


def smk(wd: Path, *args: str, snakefile: Path, config="config.yaml", check=True):
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
        "--directory", str(wd), "--configfile", str(wd / config), "--cores", "2", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{proc.stdout[-6000:]}\n{proc.stderr}")
    return proc


_FAILED: dict[str, str] = {}  # a failed run fails every test once, without running again


@pytest.fixture(scope="module")
def sheet_run(tmp_path_factory):
    """A finished run over a 2-row sheet, with the workflow copied beside it."""
    if "sheet_run" in _FAILED:
        pytest.fail(_FAILED["sheet_run"], pytrace=False)
    try:
        return _sheet_run(tmp_path_factory)
    except AssertionError as exc:
        _FAILED["sheet_run"] = f"(from the module's first test) {str(exc)[-6000:]}"
        raise


def _sheet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerun")
    wf, wd = root / "wf", root / "run"
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, wf / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            wf.mkdir(exist_ok=True)
            shutil.copy2(src, wf / name)
    shape = tuple(TINY["input"]["demo"]["shape"])
    sheet = write_experiment(wd / "input", n_samples=3, shape=shape, seed=0, pixel_size=0.5)
    rows = pd.read_csv(sheet, sep="\t")
    rows.head(2).to_csv(wd / "input" / "two.tsv", sep="\t", index=False)
    sections = {
        "classify": {**TINY["classify"], "mode": "unsupervised"},  # no label table for a sheet
    }
    write_config(wd, input={"demo": None, "sheet": "input/two.tsv", "glob": None}, **sections)
    write_config(
        wd,
        "three.yaml",
        input={"demo": None, "sheet": "input/samples.tsv", "glob": None},
        **sections,
    )
    snakefile = wf / "Snakefile"
    full = smk(wd, snakefile=snakefile)
    assert job_counts(smk(wd, "--dry-run", snakefile=snakefile)) == {}
    return wd, snakefile, full.stdout + full.stderr, list(rows["sample"])


def _forced(wd, snakefile, rule) -> dict[str, int]:
    """The jobs of `rule` and everything downstream of it, on the unchanged run."""
    return job_counts(smk(wd, "--dry-run", "--forcerun", rule, snakefile=snakefile))


def test_parameter_change_reruns_that_stage_and_after(sheet_run):
    wd, snakefile, _, _ = sheet_run
    expected = _forced(wd, snakefile, "normalize")
    write_config(
        wd, "changed.yaml",
        input={"demo": None, "sheet": "input/two.tsv", "glob": None},
        classify={**TINY["classify"], "mode": "unsupervised"},
        normalize={**TINY["normalize"], "percentiles": [2.0, 99.0]},
    )  # fmt: skip
    jobs = job_counts(smk(wd, "--dry-run", config="changed.yaml", snakefile=snakefile))
    assert jobs == expected
    assert jobs["normalize"] == 2 and "ingest" not in jobs and "tiles" not in jobs


def test_added_sample_runs_only_its_jobs(sheet_run):
    """A new sheet row runs that sample's jobs and the experiment-wide ones; an old sample's
    job runs again only where it depends on an experiment-wide job (e.g. a model fitted to all
    samples), exactly as forcing those experiment-wide rules would rerun it."""
    wd, snakefile, full_log, samples = sheet_run
    done = snakelog.jobs(full_log)
    per_sample = {j.rule for j in done if j.wildcards.get("sample") == samples[0]}
    experiment = {j.rule for j in done if "sample" not in j.wildcards}
    proc = smk(wd, "--dry-run", config="three.yaml", snakefile=snakefile)
    jobs = snakelog.jobs(proc.stdout + proc.stderr)
    new = {j.rule for j in jobs if j.wildcards.get("sample") == samples[2]}
    # before its tile plan exists the new sample's shard jobs are not known yet
    assert {"ingest", "tiles"} <= new <= per_sample
    rerun_experiment = {j.rule for j in jobs if "sample" not in j.wildcards} - {"all"}
    assert rerun_experiment <= experiment

    def old_jobs(found):
        return sorted(
            (j.rule, tuple(sorted(j.wildcards.items())))
            for j in found
            if j.wildcards.get("sample") in samples[:2]
        )

    forced = smk(wd, "--dry-run", "--forcerun", *sorted(rerun_experiment), snakefile=snakefile)
    assert old_jobs(jobs) == old_jobs(snakelog.jobs(forced.stdout + forced.stderr))


def test_script_edit_reruns_that_stage_and_after(sheet_run):
    wd, snakefile, _, _ = sheet_run
    expected = _forced(wd, snakefile, "tiles")
    script = snakefile.parent / "scripts" / "tiles.py"
    text, stat = script.read_text(), script.stat()
    try:
        script.write_text(text + "\n# a real change to the script's text\n")
        proc = smk(wd, "--dry-run", snakefile=snakefile)
    finally:
        script.write_text(text)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert job_counts(proc) == expected
    assert "ingest" not in expected and expected["tiles"] == 2
    reasons = [j.fields["reason"] for j in snakelog.jobs(proc.stdout) if j.rule == "tiles"]
    assert reasons and all("Code has changed" in r for r in reasons), reasons


# ---------------------------------------------------------------- SIGKILL in the middle of a stage

KILL_SHAPE = [768, 1024]  # ingest writes ~800 small chunks: long enough to be caught mid-write


def _spine_targets(samples=("demo01", "demo02")) -> list[str]:
    return [f"results/{s}/{f}" for s in samples for f in ("tiles.parquet", "norm.json")]


def test_sigkill_mid_stage_then_rerun_incomplete(tmp_path):
    demo = {**TINY["input"]["demo"], "shape": KILL_SHAPE}
    ref, wd = tmp_path / "reference", tmp_path / "killed"
    for d in (ref, wd):
        d.mkdir()
        write_config(d, input={**TINY["input"], "demo": demo})
    snakefile = REPO / "Snakefile"
    smk(ref, *_spine_targets(), snakefile=snakefile)

    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(wd),
        "--configfile", str(wd / "config.yaml"), "--cores", "2", *_spine_targets(),
    ]  # fmt: skip
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115
    run = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while run.poll() is None and time.monotonic() < deadline:
            if list(wd.glob("results/*/.raw.ome.zarr.tmp-*")):
                break
            time.sleep(0.01)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # snakemake and the job it runs, mid-write
        run.wait()
        log.close()
    assert run.returncode == -signal.SIGKILL, "the run ended before ingest was caught writing"
    time.sleep(1)

    # The half-written stores are hidden temporary siblings; none was renamed into place.
    stale = list(wd.glob("results/*/.raw.ome.zarr.tmp-*"))
    assert stale, "killed too late: no store was being written"
    killed = sorted({p.parent.name for p in stale})
    for sample in killed:
        assert not (wd / f"results/{sample}/raw.ome.zarr").exists(), sample
    for store in wd.glob("results/*/raw.ome.zarr"):  # whatever finished is complete
        ngff.validate(store)

    # Snakemake does not take the killed job's output as done: it is listed as incomplete or
    # scheduled again as missing.
    dry = smk(wd, "--dry-run", *_spine_targets(), snakefile=snakefile, check=False)
    text = dry.stdout + dry.stderr
    if dry.returncode != 0:
        assert "incomplete" in text.lower(), text[-3000:]
    else:
        ingest = {j.wildcards["sample"]: j for j in snakelog.jobs(text) if j.rule == "ingest"}
        for sample in killed:
            assert "Missing output files" in ingest[sample].fields["reason"], text[-3000:]

    smk(wd, "--unlock", snakefile=snakefile)  # a killed Snakemake leaves its lock behind
    smk(wd, "--rerun-incomplete", *_spine_targets(), snakefile=snakefile)
    assert compare_runs(ref, wd, ignore_stale_tmp=True) == []
