"""How many jobs (and SLURM submissions) a large experiment makes: 100 samples of 8192 x 8192.

Nothing is computed on 100 images of 8k x 8k. The real workflow is dry-run on a config whose
demo has that many samples of that shape (every other section: config.yaml's defaults):

1. before the tile-plan checkpoint: a plain dry run (the shard jobs are not known yet);
2. the shard fan-out from `microdiff.tiling.plan_tiles` with the chunks ingest would choose;
3. after the checkpoint: the pre-checkpoint outputs are stood in for (empty files, and the real
   tile plans from step 2), marked done with `snakemake --touch`, and the workflow dry-run
   again: every job, shard jobs included, from the workflow's own DAG;
4. submissions through the SLURM profile: each group of the profile's `groups` runs as one
   submission per `group-components` samples; local rules (`all`) are not submitted.

    .venv/bin/python bench/jobcount.py [--samples 100] [--shape 8192 8192]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microdiff import provenance, tiling  # noqa: E402
from microdiff.io import ngff  # noqa: E402
from tests.workflow.conftest import job_counts  # noqa: E402

CHANNELS = 2  # the demo's channels (nuclei, cytoplasm), uint16


def smk(wd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(wd), "--configfile", str(wd / "config.yaml"), "--cores", "1", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {args[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr}")
    return proc


def stand_in(wd: Path, cfg: dict, samples: list[str], shape, plan) -> None:
    """Stand-ins for everything before the checkpoint (an image of zeros of the full shape with
    the demo's channels, empty stores), and the real tile plans of the full-size image. The
    images have the full shape because the workflow packs samples into batches by the pixels
    their files hold (a tiny stand-in would be batched); they are compressed zeros, written
    once and linked."""
    (wd / "data/demo/images").mkdir(parents=True, exist_ok=True)
    first = wd / "data/demo/images/stand_in.ome.tif"
    tifffile.imwrite(first, np.zeros((CHANNELS, *shape), np.uint16), ome=True,
                     compression="zlib", tile=(512, 512))  # fmt: skip
    for s in samples:
        os.link(first, wd / f"data/demo/images/{s}.ome.tif")
        (wd / f"results/{s}/raw.ome.zarr").mkdir(parents=True, exist_ok=True)
        (wd / f"results/{s}/norm.json").write_text("{}")
        prov = provenance.record("tiles", cfg["tiles"])
        provenance.write_table(wd / f"results/{s}/tiles.parquet", plan, prov)
    (wd / "data/demo/samples.tsv").touch()
    (wd / "data/demo/labels.tsv").touch()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--shape", type=int, nargs="+", default=[8192, 8192])
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["input"]["demo"].update(samples=args.samples, shape=args.shape)
    samples = [f"demo{i + 1:02d}" for i in range(args.samples)]
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())

    chunks = ngff.choose_chunks((CHANNELS, *args.shape), np.uint16, cfg["ingest"]["chunk_bytes"])
    plan = tiling.plan_tiles(args.shape, chunks=chunks[1:], **cfg["tiles"])
    shards = tiling.n_shards(plan)

    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        before = job_counts(smk(wd, "--dry-run", "--quiet", "rules"))
        stand_in(wd, cfg, samples, args.shape, plan)
        spine = [f"results/{s}/{f}" for s in samples for f in ("tiles.parquet", "norm.json")]
        smk(wd, "--touch", "data/demo/labels.tsv", *spine)
        after = job_counts(smk(wd, "--dry-run", "--quiet", "rules"))

    # A from-scratch run: the stood-in jobs (known before the checkpoint) plus the rest.
    full = {r: max(before.get(r, 0), after.get(r, 0)) for r in {*before, *after}}
    groups, comps = profile.get("groups", {}), profile.get("group-components", {})
    submitted, grouped = 0, {}
    for rule, n in full.items():
        if rule == "all":
            continue
        if rule in groups:
            g = groups[rule]
            grouped[g] = max(grouped.get(g, 0), n)  # one connected chain per sample
        else:
            submitted += n
    group_subs = {g: math.ceil(n / comps.get(g, 1)) for g, n in grouped.items()}
    submitted += sum(group_subs.values())

    print(f"{args.samples} samples of {' x '.join(map(str, args.shape))}, {CHANNELS} channels")
    print(
        f"chunks {chunks}, tile {cfg['tiles']['tile']} (+halo {cfg['tiles']['halo']}) -> "
        f"{len(plan)} tiles per sample, {cfg['tiles']['tiles_per_shard']} per shard -> "
        f"{shards} shard jobs per sample and tiled stage\n"
    )
    print("| rule | known before the checkpoint | all jobs | SLURM group |")
    print("|---|---:|---:|---|")
    for rule in sorted(full, key=lambda r: (-full[r], r)):
        print(f"| {rule} | {before.get(rule, '-')} | {full[rule]} | {groups.get(rule, '')} |")
    print(f"| **total** | {sum(before.values())} | {sum(full.values())} | |")
    print(
        f"\nSLURM submissions through the profile: {submitted} "
        f"(groups: {json.dumps(group_subs)}; the local rule `all` is not submitted)"
    )


if __name__ == "__main__":
    main()
