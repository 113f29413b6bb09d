"""CPU cost of the segment stage's work around the network, per megapixel.

    python bench/segment_post.py [--images 3 --size 1024 --cache /tmp/segment_post]
    python bench/segment_post.py --profile            # cProfile of the gather: hot spots
    python bench/segment_post.py --save ref.npz       # keep the labels ...
    python bench/segment_post.py --compare ref.npz    # ... and compare a later run's with them
    python bench/segment_post.py --shards             # the shard jobs' work around the network too

Images like the demo's (microdiff.simulate, nuclei + cytoplasm, photons 30, 0.65 um pixels,
tiles of 512 with a halo of 32, 16 tiles per shard) go through the segment stage's shard part
once (the shipped nuclei and cell models, K = 4 samples of 1 step: config.yaml's segment
section); the shard stores are cached in `--cache`, so later runs time only the gather. CPU
seconds (time.process_time) of each step of the gather: nuclei instances (extraction, K-sample
consistency, stitching), cells from the nuclei, the segments table, the image and label
pyramids, and the rest (probability/uncertainty image, validation, the table's file). AP@0.5 of
nuclei and cells against the simulator's truth says whether a change lowered quality.

--shards runs every image's shard jobs again (models loaded once, as a batch job does; batch size
"auto", as config.yaml says) and splits their CPU seconds into the network (`timing.NETWORK`),
the position-keyed noise (`diffusion.noise`, outside the network) and the rest (reading and
normalizing tiles, padding, the K-sample summaries, the shard store writes); --save/--compare
then also cover a digest of every shard store.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import yaml
import zarr

from microdiff import normalize
from microdiff.diffusion import posterior
from microdiff.ingest import ingest
from microdiff.io import ngff
from microdiff.metrics import average_precision
from microdiff.segment import inputs, instances, stage
from microdiff.shipped import SEGMENT_CELLS, SEGMENT_NUCLEI
from microdiff.simulate import simulate_image, write_sample
from microdiff.tiling import plan_store
from microdiff.timing import NETWORK

REPO = Path(__file__).resolve().parents[1]
SECTION = "segment"
STEPS = {  # step name -> (module, function) timed inside the gather
    "nuclei instances + stitching": (instances, "stitch"),
    "cells from nuclei": (instances, "link_cells"),
    "segments table": (stage, "object_table"),
    "label pyramids": (stage, "fill_label_pyramid"),
    "image pyramid": (ngff, "fill_pyramid"),
}


def params() -> dict:
    p = yaml.safe_load((REPO / "config.yaml").read_text())[SECTION]
    return {**p, "batch_size": 1}


def prepare(cache: Path, n: int, size: int) -> list[dict]:
    """Simulated images, their stores and normalization, and their shard stores (cached)."""
    demo = yaml.safe_load((REPO / "config.yaml").read_text())["input"]["demo"]
    out = []
    for i in range(n):
        d = cache / f"img{i}-{size}"
        raw, norm = d / "raw.ome.zarr", d / "norm.json"
        plan = plan_store(raw, tile=512, halo=32, tiles_per_shard=16) if raw.exists() else None
        if not (d / "done").exists():
            shutil.rmtree(d, ignore_errors=True)
            sim = simulate_image((size, size), photons=demo["photons"], seed=100 + i)
            path = write_sample(d, "s", sim, pixel_size=demo["pixel_size"])
            ingest(path, raw, chunk_bytes=1 << 20, progress=False)
            normalize.compute([raw], (1.0, 99.8), norm)
            plan = plan_store(raw, tile=512, halo=32, tiles_per_shard=16)
            t = time.process_time()
            for s in sorted(int(v) for v in plan["shard"].unique()):
                stage.segment_shard(raw, plan, s, d / f"shard-{s}.zarr", SEGMENT_NUCLEI, norm,
                                    params(), 1, "cpu", SEGMENT_CELLS)  # fmt: skip
            print(f"image {i}: network {time.process_time() - t:.1f} CPU s (cached in {d})")
            (d / "done").touch()
        truth = {k: tifffile.imread(d / "truth" / f"s_{k}.tif") for k in ("nuclei", "cells")}
        stores = sorted(d.glob("shard-*.zarr"), key=lambda s: int(s.stem.split("-")[1]))
        out.append({"raw": raw, "norm": norm, "plan": plan, "stores": stores, "truth": truth})
    return out


def timed(spent: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - t

    return wrapper


def time_shards(images: list[dict]) -> tuple[list, dict]:
    """Every image's shard jobs again: (step, CPU s) rows and a digest of each shard store."""
    spent = defaultdict(float)
    posterior.initial_noise = timed(spent, "noise", posterior.initial_noise)
    models = [inputs.load_model(m, "cpu") for m in (SEGMENT_NUCLEI, SEGMENT_CELLS)]
    p, digests = {**params(), "batch_size": "auto"}, {}
    net, t = NETWORK.cpu, time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        for i, im in enumerate(images):
            for s in sorted(int(v) for v in im["plan"]["shard"].unique()):
                store = Path(tmp) / f"{i}-{s}.zarr"
                stage.segment_shard(im["raw"], im["plan"], s, store, models[0], im["norm"], p,
                                    "auto", "cpu", models[1])  # fmt: skip
                data = zarr.open_array(str(store), mode="r")[:]
                digests[f"shard{i}-{s}"] = np.frombuffer(hashlib.sha256(data).digest(), np.uint8)
    total, net = time.process_time() - t, NETWORK.cpu - net
    rest = total - net - spent["noise"]
    rows = [("network", net), ("positional noise (diffusion)", spent["noise"])]
    return rows + [("rest of the shard jobs", rest), ("shard jobs total", total)], digests


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "segment_post")
    ap.add_argument("--profile", action="store_true", help="cProfile the gathers")
    ap.add_argument("--save", type=Path, help="write labels, image and table to this .npz")
    ap.add_argument("--compare", type=Path, help="compare them with this .npz")
    ap.add_argument("--shards", action="store_true", help="time the shard jobs too")
    a = ap.parse_args()
    a.cache.mkdir(parents=True, exist_ok=True)
    images = prepare(a.cache, a.images, a.size)
    spent = defaultdict(float)
    for name, (module, fn) in STEPS.items():
        setattr(module, fn, timed(spent, name, getattr(module, fn)))
    prof = cProfile.Profile() if a.profile else None
    labels, truth, total, p = {}, defaultdict(list), 0.0, params()
    with tempfile.TemporaryDirectory() as tmp:
        for i, im in enumerate(images):
            out, table = Path(tmp) / f"{i}.ome.zarr", Path(tmp) / f"{i}.parquet"
            t = time.process_time()
            if prof:
                prof.enable()
            stage.segment_gather(im["raw"], im["plan"], im["stores"], out, table, im["norm"], p)
            if prof:
                prof.disable()
            total += time.process_time() - t
            root = zarr.open_group(str(out), mode="r")
            labels[f"image{i}"] = root["0"][:]  # probability and uncertainty
            labels[f"table{i}"] = pd.read_parquet(table).select_dtypes("number").to_numpy(float)
            for k in ("nuclei", "cells"):
                labels[f"{k}{i}"] = root[f"labels/{k}/0"][:]
                truth[k].append((im["truth"][k], labels[f"{k}{i}"]))
    mp = a.images * a.size * a.size / 1e6
    rows = list(spent.items()) + [("rest of the gather", total - sum(spent.values()))]
    rows.append(("gather total", total))
    if a.shards:
        shard_rows, digests = time_shards(images)
        rows += shard_rows
        labels.update(digests)
    print(f"\n{a.images} images of {a.size} x {a.size} ({mp:.2f} MP)")
    print(f"{'step':32s} {'CPU s':>8s} {'CPU s/MP':>9s}")
    for name, s in rows:
        print(f"{name:32s} {s:8.2f} {s / mp:9.2f}")
    for k, pairs in truth.items():
        ap50 = average_precision([t for t, _ in pairs], [p for _, p in pairs])[0]
        print(f"AP@0.5 {k}: {ap50:.4f}")
    if a.save:
        np.savez_compressed(a.save, **labels)
    if a.compare:
        ref = np.load(a.compare)
        for key, lab in labels.items():
            if key not in ref:
                print(f"{key}: not in {a.compare}")
                continue
            same = ref[key].shape == lab.shape and np.array_equal(ref[key], lab, equal_nan=True)
            print(f"{key}: {'identical' if same else 'DIFFERENT'}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
