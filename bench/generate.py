"""Generate benchmark: does diffusion-generated training data help segmentation when annotations
are scarce, and how real do the synthetic images look?

    python bench/generate.py --data ../shared/data [--work DIR] [--device cuda]

The defaults are the reported run's settings (CPU, 2 shared cores: generator 1500 steps, 32
pairs of 256x256 at 16 DPM-Solver++ steps, segmentation 2000 steps per arm, 50 test images).

BBBC039 nuclei, split as in bench/segment.py (sorted files: even index trains, odd tests). A
seeded 10% of the training images (5 of 50) are the only annotations used: the generate model
(mask-conditioned diffusion UNet) is trained on them, new masks are drawn from their objects,
and synthetic pairs are sampled (DPM-Solver++). The segmentation model (microdiff.segment's
train_model, the same steps, batch and seed, from the same seeded random network: no
pretraining) is trained twice: on the 5 real pairs only, and on the 5 real pairs mixed with the
synthetic ones (a share `--ratio` of the training patches; `--jobs 2` runs the two at once);
both are evaluated on the test images as in bench/segment.py (the stage's defaults: K=4
samples of 1 DDIM step, inconsistent objects dropped; AP at IoU 0.5 and mean AP over
0.5..0.9). Realism: gradient-boosted trees on crop statistics try to tell
crops of held-back real training images (never seen by the generator) from synthetic crops;
5-fold accuracy, 0.5 = indistinguishable. The same classifier on two disjoint sets of real
images gives the floor.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from microdiff import diffusion as dm
from microdiff import generate as g
from microdiff.metrics import average_precision
from microdiff.normalize import percentile_norm
from microdiff.segment import instances
from microdiff.segment.model import Model, train_model
from microdiff.segment.represent import MixedSource, PairSource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment import microdiff_fn  # noqa: E402  (bench/segment.py: the stage's way)

TAUS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]


def load_bbbc039(data: Path):
    import tifffile

    files = sorted((data / "bbbc039_nuclei" / "images").glob("*.tif"))
    imgs = [percentile_norm(tifffile.imread(f).astype(np.float32)[None]) for f in files]
    labs = [tifffile.imread(str(f).replace("/images/", "/labels/")).astype(np.int32)
            for f in files]  # fmt: skip
    return (imgs[0::2], labs[0::2]), (imgs[1::2], labs[1::2])


def stored(path: Path, params: dict) -> bool:
    """Whether `path` records exactly these parameters (a --work step already done)."""
    return path.is_file() and json.loads(path.read_text()) == json.loads(json.dumps(params))


def store(path: Path, params: dict, times_path: Path, times: dict) -> None:
    times_path.write_text(json.dumps(times))
    path.write_text(json.dumps(params))


def evaluate(model: Model, images, truths, k: int, steps: int) -> tuple[float, float, float]:
    """As bench/segment.py (and the stage) does it: K samples of `steps` DDIM steps each."""
    t = time.perf_counter()
    run = microdiff_fn(model, k, steps, instances.Params())
    preds = [run(img)[0] for img in images]
    ap = average_precision(list(truths), preds, TAUS)
    return ap[0], float(np.mean(ap)), time.perf_counter() - t


def segment_arm(name, images, labels, synthetic, seg: dict, test_images, test_labels):
    """Train the segmentation model on the real pairs (mixed with `synthetic` (images, labels)
    at seg['ratio'] when given) from a network seeded by seg['seed']; evaluate on the test set."""
    tag = name.replace("%", "%%")  # the arm name "real + synthetic (50%)" is a format string here
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {tag}: %(message)s")
    dm.set_threads(seg["threads"])
    t = time.perf_counter()
    source = None
    if synthetic:
        real = PairSource(images, [[lab] for lab in labels], patch=seg["patch"])
        fake = PairSource(*synthetic, patch=seg["patch"])
        source = MixedSource(real, fake, seg["ratio"])
    torch.manual_seed(seg["seed"])  # both arms start from the same random network
    res = train_model(images, [[lab] for lab in labels], None, steps=seg["steps"],
                      batch=seg["batch"], patch=seg["patch"], width=seg["width"],
                      seed=seg["seed"], threads=seg["threads"], device=seg["device"],
                      source=source)  # fmt: skip
    train_s = time.perf_counter() - t
    model = Model(res.denoiser.eval(), ("nuclei",), 1)
    ap50, map_, eval_s = evaluate(model, test_images, test_labels, seg["k"], seg["sample_steps"])
    print(f"# {name}: AP@0.5 {ap50:.3f} in {train_s:.0f} + {eval_s:.0f} s", file=sys.stderr)
    return name, ap50, map_, train_s, eval_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--fraction", type=float, default=0.1, help="share of training images used")
    ap.add_argument("--gen-steps", type=int, default=1500, help="generator training steps")
    ap.add_argument("--gen-width", type=int, default=16)
    ap.add_argument("--gen-patch", type=int, default=64)
    ap.add_argument("--seg-steps", type=int, default=2000, help="segmentation training steps")
    ap.add_argument("--k", type=int, default=4, help="segmentation samples per image")
    ap.add_argument("--seg-sample-steps", type=int, default=1, help="DDIM steps per sample")
    ap.add_argument("--seg-width", type=int, default=16)
    ap.add_argument("--seg-patch", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=32, help="synthetic pairs")
    ap.add_argument("--shape", type=int, nargs=2, default=[256, 256])
    ap.add_argument("--sample-steps", type=int, default=16, help="DPM-Solver++ steps")
    ap.add_argument("--ratio", type=float, default=0.5, help="share of synthetic patches")
    ap.add_argument("--test", type=int, default=50, help="at most this many test images")
    ap.add_argument("--heldback", type=int, default=10, help="real images for realism")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", type=Path, help="keep the generator and pairs here (reused by a "
                    "rerun with the same settings, with their recorded times)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--jobs", type=int, default=2, help="segmentation arms run in parallel")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dm.set_threads(a.threads)
    device = str(dm.pick_device(a.device))
    (tr_i, tr_l), (te_i, te_l) = load_bbbc039(a.data)
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(tr_i))
    k = max(1, round(a.fraction * len(tr_i)))
    use, rest = order[:k], order[k:]
    images, labels = [tr_i[i] for i in use], [tr_l[i] for i in use]
    held = [tr_i[i] for i in rest[: 2 * a.heldback]]
    te_i, te_l = te_i[: a.test], te_l[: a.test]
    work = a.work or Path(tempfile.mkdtemp(prefix="microdiff_bench_gen_"))
    work.mkdir(parents=True, exist_ok=True)
    times = json.loads((work / "times.json").read_text()) if (work / "times.json").is_file() else {}

    annotated = {"images": images, "labels": labels, "classes": None, "channel_names": ["dna"]}
    training = {"steps": a.gen_steps, "width": a.gen_width, "depth": 3, "batch": a.batch,
                "patch": a.gen_patch, "lr": 1e-3, "seed": a.seed}  # fmt: skip
    if stored(work / "gen.json", training) and (work / "gen/weights.pt").is_file():
        print(f"# generator reused from {work}", file=sys.stderr)
    else:
        (work / "gen.json").unlink(missing_ok=True)
        t = time.perf_counter()
        g.train_stage(annotated, work / "gen", training, threads=a.threads, device=device)
        times["generator training"] = time.perf_counter() - t
        store(work / "gen.json", training, work / "times.json", times)
    print(f"# generator trained in {times['generator training']:.0f} s", file=sys.stderr)

    params = {"pairs": a.pairs, "shape": a.shape, "steps": a.sample_steps, "seed": a.seed}
    both = {"sampling": params, "training": training}
    if stored(work / "pairs.json", both) and (work / "m.parquet").is_file():
        table = pd.read_parquet(work / "m.parquet")
        print(f"# pairs reused from {work}", file=sys.stderr)
    else:
        (work / "pairs.json").unlink(missing_ok=True)
        t = time.perf_counter()
        table = g.generate_pairs(work / "gen", annotated, work / "pairs", work / "m.parquet",
                                 params, device=device)  # fmt: skip
        times["sampling"] = time.perf_counter() - t
        store(work / "pairs.json", both, work / "times.json", times)
    s_images, s_labels = g.read_pairs(work / "m.parquet")
    print(f"# {len(table)} pairs sampled in {times['sampling']:.0f} s", file=sys.stderr)

    real_obj = np.mean([lab.max() / lab.size for lab in labels]) * 1e6
    syn_obj = np.mean([lab[0].max() / lab[0].size for lab in s_labels]) * 1e6
    contrast_real = np.mean([g.contrast(i, lab) for i, lab in zip(images, labels)])

    arms = [("real only", None), (f"real + synthetic ({a.ratio:.0%})", (s_images, s_labels))]
    seg = {"steps": a.seg_steps, "batch": a.batch, "patch": a.seg_patch, "width": a.seg_width,
           "seed": a.seed, "threads": a.threads, "device": device, "ratio": a.ratio,
           "k": a.k, "sample_steps": a.seg_sample_steps}  # fmt: skip
    jobs = [(name, images, labels, synthetic, seg, te_i, te_l) for name, synthetic in arms]
    if a.jobs > 1:  # the arms are independent: one process each (spawned: no forked torch)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(a.jobs, len(jobs)), mp_context=ctx) as pool:
            rows = list(pool.map(segment_arm, *zip(*jobs)))
    else:
        rows = [segment_arm(*job) for job in jobs]

    t = time.perf_counter()
    half = len(held) // 2
    syn_r = g.realism(held[:half], s_images, crops=200, size=64, seed=a.seed)
    floor = g.realism(held[:half], held[half:], crops=200, size=64, seed=a.seed)
    times["realism"] = time.perf_counter() - t

    print(f"\ngenerate benchmark ({device}, {a.threads} threads; BBBC039: {k} of {len(tr_i)} "
          f"training images annotated, {len(te_i)} test images; generator width "
          f"{a.gen_width}, patch {a.gen_patch}, {a.gen_steps} steps in "
          f"{times['generator training']:.0f} s; "
          f"{len(table)} synthetic {a.shape[0]}x{a.shape[1]} pairs, DPM-Solver++ "
          f"{a.sample_steps} steps, {times['sampling']:.0f} s; segmentation width "
          f"{a.seg_width}, patch {a.seg_patch}, batch {a.batch}, {a.seg_steps} steps each from "
          f"the same seeded random initialisation, evaluated K={a.k} x {a.seg_sample_steps} DDIM "
          f"steps as the stage)\n")  # fmt: skip
    print("| segmentation trained on         | AP@0.5 | mAP.5:.9 | train s | eval s |")
    print("|---------------------------------|--------|----------|---------|--------|")
    for name, ap50, map_, ts, es in rows:
        print(f"| {name:31} | {ap50:.3f}  | {map_:.3f}    | {ts:7.0f} | {es:6.0f} |")
    print("\n| realism (real vs other crops, 64 px, 5-fold HGB)   | accuracy      |")
    print("|----------------------------------------------------|---------------|")
    print(f"| held-back real vs synthetic                        | {syn_r['accuracy']:.3f} "
          f"+- {syn_r['std']:.3f} |")  # fmt: skip
    print(f"| held-back real vs other held-back real (floor)     | {floor['accuracy']:.3f} "
          f"+- {floor['std']:.3f} |")  # fmt: skip
    print(f"\nobjects per Mpx: annotated {real_obj:.0f}, synthetic masks {syn_obj:.0f}; "
          f"object/background contrast: annotated {contrast_real:.2f}, synthetic "
          f"{table['contrast'].mean():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
