"""Scale benchmark: wall time, peak RSS and megapixels per second of every stage, by image size.

    python bench/scale.py [--sizes 1024 4096 16384] [--big 32768] [--stages ingest ...]
                          [--fast] [--work /tmp/microdiff-scale] [--keep]

Synthetic single-channel uint16 samples of N x N pixels are written block by block (never held
whole): one 1024 x 1024 `microdiff.simulate` block with its ground-truth nuclei, repeated over
the image with a flip per block (so neighbouring blocks differ), as a 512-tiled TIFF (the ingest
input) and as a `segmentation.ome.zarr` with the truth labels and an uncertainty channel (the
features input, so features can run at sizes where segmentation would take hours here).

Each stage runs in a fresh child process (`os.wait4` gives that child's own peak RSS); wall time
is measured inside the child around the stage call (imports excluded). Stages: ingest, tiles,
normalize, restore shards (all shards of the plan, one after the other, in one child) and
gather, segment shards and gather, features. `--big` sizes run the cheap stages only (ingest,
tiles, normalize, features). `--fast` runs the diffusion stages with tiny untrained width-4
networks at 1 NFE (restore 1 NFE, segment K=1 x 1 DDIM step): the cost of the machinery around
the network (I/O, tiling, stitching, pyramids), not of the shipped models; the `setting` column
says which. `cost/px` is seconds per pixel relative to the smallest size of the same stage and
setting (1.00 = perfectly linear), from the child's CPU seconds (`time.process_time` around the
stage call, all its threads): on a machine shared with other jobs wall time is mostly waiting,
CPU time is what the stage costs. MP/s is from wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BLOCK = 1024
STAGES = [
    "ingest",
    "tiles",
    "normalize",
    "restore_shards",
    "restore_gather",
    "segment_shards",
    "segment_gather",
    "features",
]
CHEAP = {"ingest", "tiles", "normalize", "features"}
TILES = {"tile": 512, "halo": 32, "tiles_per_shard": 16}
# batches of 2 planes / 2 tiles: the 1k image has 2 tiles (512 x 1024), so every size runs the
# network on the same batch shape and cost per pixel compares like with like
BATCH = 2
RESTORE = {"inference": {"halo": 32, "batch": BATCH, "samples": 1, "seed": 0}, "superres": {}}


# -- synthetic inputs, block by block ------------------------------------------------------------


def base_block(seed: int = 0):
    from microdiff.simulate import simulate_image

    sim = simulate_image((BLOCK, BLOCK), channels=("nuclei",), seed=seed)
    return sim.noisy[0].astype(np.uint16), sim.nuclei.astype(np.int32)


def variant(a: np.ndarray, by: int, bx: int) -> np.ndarray:
    k = (by * 3 + bx) % 4
    return a[:: -1 if k & 1 else 1, :: -1 if k & 2 else 1]


def write_input_tiff(path: Path, n: int, img: np.ndarray) -> None:
    import tifffile

    t = 512

    def tiles():
        for ty in range(n // t):
            for tx in range(n // t):
                by, bx = ty * t // BLOCK, tx * t // BLOCK
                b = variant(img, by, bx)
                oy, ox = ty * t % BLOCK, tx * t % BLOCK
                yield np.ascontiguousarray(b[oy : oy + t, ox : ox + t])

    tmp = path.with_suffix(".tmp.tif")
    tifffile.imwrite(tmp, tiles(), shape=(n, n), dtype=np.uint16, tile=(t, t))
    tmp.rename(path)


def write_truth_segmentation(path: Path, n: int, lab: np.ndarray) -> None:
    """An NGFF image (nuclei_prob, nuclei_std) with labels/nuclei: the truth, block by block."""
    from microdiff.io import ngff
    from microdiff.io.labels import create_labels

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    scale = {"y": 0.65, "x": 0.65}
    g = ngff.create_image(tmp, (2, n, n), np.float32, "cyx", scale, ["nuclei_prob", "nuclei_std"])
    labels = create_labels(g, ["nuclei"], (n, n), scale)["nuclei"]["0"]
    top = int(lab.max()) + 1
    nb = n // BLOCK
    for by in range(nb):
        for bx in range(nb):
            b = variant(lab, by, bx)
            sl = (slice(by * BLOCK, (by + 1) * BLOCK), slice(bx * BLOCK, (bx + 1) * BLOCK))
            labels[sl] = np.where(b > 0, b + (by * nb + bx) * top, 0).astype(np.int32)
            fg = (b > 0).astype(np.float32)
            g["0"][(0, *sl)] = fg
            g["0"][(1, *sl)] = 0.1 * fg
    tmp.rename(path)


def make_inputs(work: Path, n: int, cache: Path, truth: bool) -> None:
    work.mkdir(parents=True, exist_ok=True)
    blk = cache / "block.npz"
    if not blk.exists():
        img, lab = base_block()
        np.savez(blk, img=img, lab=lab)
    d = np.load(blk)
    if not (work / "input.tif").exists():
        write_input_tiff(work / "input.tif", n, d["img"])
    if truth and not (work / "truth_seg.ome.zarr").exists():
        write_truth_segmentation(work / "truth_seg.ome.zarr", n, d["lab"])


def tiny_models(cache: Path) -> dict[str, Path]:
    """Untrained width-4, depth-2 restore and segment checkpoints (the --fast setting)."""
    import torch

    from microdiff.diffusion import build as build_network
    from microdiff.diffusion import read_config, save_checkpoint
    from microdiff.restore.stage import DEFAULT_MODEL
    from microdiff.segment.model import build

    out = {"restore": cache / "tiny_restore", "segment": cache / "tiny_segment"}
    torch.manual_seed(0)
    if not (out["restore"] / "config.json").exists():
        den = build_network(1, width=4, depth=2, local=True)
        noise = read_config(DEFAULT_MODEL)["noise"]
        save_checkpoint(out["restore"], den, {"task": "restore", "noise": noise, "mode": "tiny"})
    if not (out["segment"] / "config.json").exists():
        den = build(width=4, depth=2)
        seg = {"kinds": ["nuclei"], "cond_channels": 1}
        save_checkpoint(out["segment"], den, {"task": "segment", "segment": seg})
    return out


# -- stages (run in a child) ---------------------------------------------------------------------


def settings(fast: bool, cache: Path) -> dict:
    if fast:
        m = tiny_models(cache)
        return {
            "restore": (m["restore"], "tiny w4 1 NFE"),
            "segment": (m["segment"], {"samples": 1, "steps": 1}, "tiny w4 K1x1"),
        }
    from microdiff.restore.stage import DEFAULT_MODEL as R
    from microdiff.segment.stage import DEFAULT_MODEL as S

    return {
        "restore": (R, "shipped 1 NFE"),
        "segment": (S, {"samples": 4, "steps": 2}, "shipped K4x2"),
    }


def run_stage(stage: str, work: Path, fast: bool, cache: Path) -> dict:
    import pandas as pd

    from microdiff.diffusion import set_threads

    set_threads(1)
    import ome_zarr_models.v04.image  # noqa: F401  (imports done before the clock starts)
    import ome_zarr_models.v04.image_label  # noqa: F401
    import ome_zarr_models.v04.labels  # noqa: F401

    raw, plan_path, norm = work / "raw.ome.zarr", work / "tiles.parquet", work / "norm.json"
    setting = "-"
    if stage.startswith(("restore", "segment")):
        cfg = settings(fast, cache)
    t0, c0 = time.perf_counter(), time.process_time()
    if stage == "ingest":
        from microdiff.ingest import ingest

        shutil.rmtree(raw, ignore_errors=True)
        ingest(work / "input.tif", raw, channel_names=["nuclei"], pixel_size=0.65, progress=False)
    elif stage == "tiles":
        from microdiff import tiling
        from microdiff.provenance import write_table

        write_table(plan_path, tiling.plan_store(raw, **TILES), {})
    elif stage == "normalize":
        from microdiff import normalize

        normalize.compute([raw], (1.0, 99.8), norm)
    elif stage == "restore_shards":
        from microdiff.restore.stage import restore_shard

        model, setting = cfg["restore"]
        plan = pd.read_parquet(plan_path)
        for s in sorted(plan["shard"].unique()):
            out = work / "restore" / f"shard{s:05d}.zarr"
            restore_shard(raw, plan, int(s), model, norm, RESTORE, out, 1, progress=False)
    elif stage == "restore_gather":
        from microdiff.restore.stage import gather_restore

        model, setting = cfg["restore"]
        stores = sorted((work / "restore").glob("shard*.zarr"))
        shutil.rmtree(work / "restored.ome.zarr", ignore_errors=True)
        gather_restore(
            raw, pd.read_parquet(plan_path), stores, model, RESTORE, work / "restored.ome.zarr"
        )
    elif stage == "segment_shards":
        from microdiff.segment.stage import segment_shard

        model, params, setting = cfg["segment"]
        plan = pd.read_parquet(plan_path)
        for s in sorted(plan["shard"].unique()):
            out = work / "segment" / f"shard{s:05d}.zarr"
            segment_shard(raw, plan, int(s), out, model, norm, params, BATCH, device="cpu")
    elif stage == "segment_gather":
        from microdiff.segment.stage import segment_gather

        model, params, setting = cfg["segment"]
        plan = pd.read_parquet(plan_path)
        stores = sorted((work / "segment").glob("shard*.zarr"))
        out = work / "segmentation.ome.zarr"
        shutil.rmtree(out, ignore_errors=True)
        params = {**params, "kinds": ["nuclei"]}
        segment_gather(raw, plan, stores, out, work / "segments.parquet", norm, params)
    elif stage == "features":
        from microdiff import features
        from microdiff.provenance import write_table

        table = features.measure_sample(work / "truth_seg.ome.zarr", [raw], "bench")
        write_table(work / "objects.parquet", table, {})
        setting = f"{len(table)} objects"
    else:
        raise ValueError(f"unknown stage {stage}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "setting": setting}


def child(stage: str, work: Path, fast: bool, cache: Path) -> tuple[dict, float]:
    """Run one stage in a fresh process; (its result, its peak RSS in MiB)."""
    cmd = [sys.executable, __file__, "--child", stage, "--work", str(work), "--cache", str(cache)]
    proc = subprocess.Popen(cmd + (["--fast"] if fast else []), stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed in {work} (exit {proc.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 16384])
    ap.add_argument("--big", type=int, nargs="*", default=[32768])
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    ap.add_argument("--fast", action="store_true", help="tiny networks at 1 NFE (see docstring)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/microdiff-scale"))
    ap.add_argument("--keep", action="store_true", help="keep each size's files afterwards")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_stage(a.child, a.work, a.fast, a.cache)))
        return
    cache = a.work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if a.fast:
        tiny_models(cache)
    need = {"ingest": [], "tiles": ["ingest"], "normalize": ["ingest"]}
    need.update({"restore_shards": ["tiles", "normalize"], "restore_gather": ["restore_shards"]})
    need.update({"segment_shards": ["tiles", "normalize"], "segment_gather": ["segment_shards"]})
    need["features"] = ["ingest"]
    base = {}
    head = "| stage | size | MP | setting | wall s | CPU s | peak RSS MiB | MP/s | cost/px |"
    print(head + "\n" + "|---" * head.count(" | ") + "|---|", flush=True)
    for n in [*a.sizes, *a.big]:
        big = n not in a.sizes
        stages = [s for s in a.stages if not big or s in CHEAP]
        todo, grow = set(stages), True  # the chosen stages and what they need
        while grow:
            more = {d for s in todo for d in need[s]} - todo
            todo, grow = todo | more, bool(more)
        todo = [s for s in STAGES if s in todo]
        work = a.work / f"n{n}"
        t0 = time.perf_counter()
        make_inputs(work, n, cache, "features" in todo)
        print(f"<!-- inputs {n}: {time.perf_counter() - t0:.1f} s -->", flush=True)
        for s in todo:
            res, rss = child(s, work, a.fast, cache)
            mp = n * n / 1e6
            key = (s, res["setting"] if s != "features" else "-")
            cost = res["cpu"] / mp
            base.setdefault(key, cost)
            row = (s, n, mp, res["setting"], res["wall"], res["cpu"], rss, mp / res["wall"])
            if s in stages:
                text = "| {} | {}² | {:.0f} | {} | {:.1f} | {:.1f} | {:.0f} | {:.2f} | {:.2f} |"
                print(text.format(*row, cost / base[key]), flush=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
