"""What a whole experiment costs: the real workflow on a simulated experiment, every default stage.

N samples of H x W (2 channels: nuclei, cytoplasm) are simulated (`microdiff.simulate`) into a
sample sheet, and `snakemake --cores C` runs the repository's workflow on them with config.yaml's
defaults (restore with the shipped model, segment with the shipped nuclei and cell models,
features, unsupervised classification, the report's figures). Per rule it prints jobs, CPU
seconds, wall seconds, the stages' own seconds (the "done in" of each job's log), the network's
CPU seconds inside them (every `Denoiser` call, from the same logs), CPU s per MP and the largest
peak RSS of its jobs (Snakemake's benchmark files); overall the MP/s end to end, the CPU of
everything around the network over the network's CPU, and the start-up share of job wall time
(job wall minus the stage's own seconds: interpreter, imports, Snakemake's script wrapper).

`--compare REF` runs the same experiment through the workflow of git revision REF too, in the
same session, alternating (these machines are shared): the ratio of the two end-to-end times is
the speed-up.

    .venv/bin/python bench/experiment.py --samples 64 --shape 520 696
    .venv/bin/python bench/experiment.py --samples 2 --shape 4096 4096
    .venv/bin/python bench/experiment.py --samples 16 --shape 520 696 --compare e90851f
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from microdiff.simulate import write_experiment  # noqa: E402

DONE = re.compile(r": done in ([0-9.]+) s(?:, ([0-9.]+) s CPU)?")
NETWORK = re.compile(r": network ([0-9.]+) s wall, ([0-9.]+) s CPU")


def experiment_config(repo: Path, sheet: Path) -> dict:
    """`repo`'s own defaults (config.yaml), on the sample sheet, classified without labels."""
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["input"] = {"demo": None, "sheet": str(sheet), "glob": None, "plate": None}
    cfg["classify"]["mode"] = "unsupervised"
    cfg["classify"]["labels"] = None
    return cfg


def run(repo: Path, wd: Path, cfg: dict, cores: int) -> float:
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(repo / "src"))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
        "--directory", str(wd), "--configfile", str(wd / "config.yaml"),
        "--cores", str(cores), "--quiet", "progress",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed in {wd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def per_rule(wd: Path) -> dict[str, dict]:
    """Jobs, CPU and wall seconds, the largest peak RSS (benchmark files), own and network
    seconds (logs) per rule."""
    rules: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for tsv in sorted((wd / "benchmarks").glob("*/*.tsv")):
        rule = tsv.parent.name
        with tsv.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        r = rules[rule]
        r["jobs"] += 1
        r["wall"] += float(row["s"])
        if row["max_rss"] not in ("", "NA", "-"):
            r["rss"] = max(r["rss"], float(row["max_rss"]))
        log = wd / "logs" / rule / (tsv.stem + ".log")
        text = log.read_text() if log.exists() else ""
        done = DONE.findall(text)
        r["own"] += float(done[-1][0]) if done else float(row["s"])
        # the job's own count of its process's CPU (imports included); Snakemake's benchmark
        # samples the process now and then and misses much of a short job's CPU
        sampled = float(row["cpu_time"]) if row["cpu_time"] not in ("", "NA") else 0.0
        r["cpu"] += float(done[-1][1]) if done and done[-1][1] else sampled
        net = NETWORK.findall(text)
        if net:
            r["net_wall"] += float(net[-1][0])
            r["net_cpu"] += float(net[-1][1])
    return rules


def report(label: str, rules: dict, wall: float, mpix: float) -> None:
    print(f"\n## {label}: {mpix:.1f} MP, {wall:.0f} s end to end, {mpix / wall:.4f} MP/s\n")
    print("| rule | jobs | CPU s | wall s | own s | network CPU s | CPU s per MP | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    order = sorted(rules, key=lambda k: -rules[k]["cpu"])
    for name in order:
        r = rules[name]
        print(
            f"| {name} | {int(r['jobs'])} | {r['cpu']:.1f} | {r['wall']:.1f} | {r['own']:.1f} | "
            f"{r['net_cpu']:.1f} | {r['cpu'] / mpix:.2f} | {r['rss']:.0f} |"
        )
    cpu = sum(r["cpu"] for r in rules.values())
    net = sum(r["net_cpu"] for r in rules.values())
    job_wall = sum(r["wall"] for r in rules.values())
    own = sum(r["own"] for r in rules.values())
    jobs = int(sum(r["jobs"] for r in rules.values()))
    around = (cpu - net) / net if net else float("nan")
    print(
        f"\n{jobs} jobs; CPU around the network / network CPU: {around:.2f} "
        f"({cpu - net:.0f} s / {net:.0f} s); start-up share of job wall time: "
        f"{(job_wall - own) / job_wall:.1%} ({job_wall - own:.0f} s of {job_wall:.0f} s)"
    )


def checkout(ref: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), ref],
                   check=True, capture_output=True)  # fmt: skip
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--shape", type=int, nargs=2, default=[520, 696])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--compare", help="git revision to run side by side (the 'before')")
    ap.add_argument("--keep", help="folder to keep the runs in (default: a temporary one)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="microdiff-experiment-") as tmp:
        root = Path(args.keep or tmp)
        data = root / "data"
        sheet = write_experiment(data, n_samples=args.samples, shape=tuple(args.shape), seed=0)
        mpix = args.samples * args.shape[0] * args.shape[1] / 1e6
        print(
            f"# {args.samples} samples of {args.shape[0]} x {args.shape[1]} x 2 channels, "
            f"--cores {args.cores}"
        )
        runs = [("this tree", REPO)]
        if args.compare:
            runs.insert(0, (f"revision {args.compare}", checkout(args.compare, root / "ref")))
        walls = {}
        try:
            for label, repo in runs:
                wd = root / re.sub(r"\W+", "_", label)
                walls[label] = run(repo, wd, experiment_config(repo, sheet), args.cores)
                report(label, per_rule(wd), walls[label], mpix)
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(root / "ref")], capture_output=True)  # fmt: skip
        if args.compare:
            before, after = (walls[label] for label, _ in runs)
            print(f"\nend to end: {before:.0f} s before, {after:.0f} s now: {before / after:.2f}x")


if __name__ == "__main__":
    main()
