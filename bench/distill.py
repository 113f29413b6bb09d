"""Few network evaluations: teacher versus distilled student versus the undistilled teacher at
the same NFE, in one table.

    .venv/bin/python bench/distill.py --data ../shared/data [--test 10 --crop 256 --threads 1]

Segmentation: the shipped nuclei model (teacher; default K = 4 samples x 2 DDIM steps = 8 NFE
per pixel, and 4 x 4 = 16 as a many-step reference), the same teacher at 4 NFE without
distillation (4 x 1 and 2 x 2), and the one-step student of `tools/distill_segment.py`
(`src/microdiff/models/segment_nuclei_fast`, progressive distillation of the teacher's 2-step
DDIM) at 4, 2 and 1 NFE. Scored with bench/segment.py's own evaluation (AP at IoU 0.5 and mean
AP over 0.5..0.9, StarDist matching) on the BBBC039 test part (odd sorted index; centre crops of
`--crop` pixels, 0 = whole images) and on simulated nuclei (seed 900 on, as bench/segment.py).
Both models were trained/distilled on simulated nuclei and the BBBC039 training part only.

Super-resolution (x2): a model trained here on simulated clean images as bench/superres.py does
(same data, degradation and CARE metrics), sampled with DPM-Solver++(2M) at 1, 4 and 16 steps
(1 sample). Restore (denoising) is not in the table: it already costs 1 NFE (the Tweedie
posterior mean from one evaluation at the data's noise level; see bench/restore.py).
AUROC std: how well the per-object uncertainty (mean pixel std over the K samples) separates
false from true positives (bench/segment.py's; 0.5 = no better than chance, nan at K = 1):
the price of few-step samples that barely differ is an uncertainty that says less.
s/MP: seconds per megapixel on this machine's CPU at `--threads` (inference + instances).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))
import segment as segbench  # noqa: E402  (bench/segment.py)
import superres as srbench  # noqa: E402  (bench/superres.py)
from train_default_segment import simulated_pairs  # noqa: E402

from microdiff import diffusion as dm  # noqa: E402
from microdiff.restore.superres import P_MEAN, P_STD, network, superres_planes  # noqa: E402
from microdiff.segment import instances  # noqa: E402
from microdiff.segment.model import Model, nfe  # noqa: E402
from microdiff.shipped import SEGMENT_NUCLEI  # noqa: E402
from microdiff.shipped import SEGMENT_NUCLEI_FAST as FAST  # noqa: E402

# (model, K samples, DDIM steps): teacher reference, default, undistilled few-step, student
SEG_RUNS = [
    ("teacher", 4, 4),
    ("teacher", 4, 2),
    ("teacher", 2, 2),
    ("teacher", 4, 1),
    ("student", 4, 1),
    ("student", 2, 1),
    ("teacher", 1, 1),
    ("student", 1, 1),
]


def centre(img: np.ndarray, size: int) -> np.ndarray:
    if not size:
        return img
    y, x = (img.shape[-2] - size) // 2, (img.shape[-1] - size) // 2
    return img[..., y : y + size, x : x + size]


def seg_rows(a, models):
    _, (imgs, truths) = segbench.load_bbbc039(a.data, None)
    bbbc = ([centre(i, a.crop) for i in imgs[: a.test]],
            [centre(t, a.crop) for t in truths[: a.test]])  # fmt: skip
    si, sl = simulated_pairs(a.simulated_test, seed=900, shape=(a.sim_size, a.sim_size))
    sets = {"bbbc039": bbbc, "simulated": (si, [lab[0] for lab in sl])}
    params = instances.Params()
    rows = []
    for dname, (images, truths) in sets.items():
        for which, k, steps in SEG_RUNS:
            fn = segbench.microdiff_fn(models[which], k, steps, params)
            r = segbench.evaluate(which, images, truths, fn, nfe(k, steps))
            row = {"task": "segment", "data": dname, "model": which,
                   "sampler": f"DDIM {steps} step x K={k}", "NFE": r["NFE"],
                   "AP@0.5": r["AP@0.5"], "mAP": r["mAP.5:.9"], "PSNR": None,
                   "AUROC": r["AUROC"].get("std"), "s/MP": r["s/MPx"]}  # fmt: skip
            print(f"# {row}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def sr_rows(a):
    torch.manual_seed(0)
    src = srbench.source(srbench.sim_images(range(4)))
    den = network({"width": 16, "depth": 3, "seed": 0})
    gain = src.calibrate(den.sigma_data)
    t0 = time.perf_counter()
    den = dm.train(den, src, a.sr_steps, batch=8, lr=1e-3, warmup=30,
                   loss=dm.EDMLoss(P_MEAN, P_STD), progress=False).denoiser.eval()  # fmt: skip
    print(f"# SR model: {a.sr_steps} steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    hr = [srbench.crop(im) for im in srbench.sim_images([100, 101])]
    lr = np.stack([srbench.degrade(h, srbench.F, srbench.PSF) for h in hr])
    rows = []
    for steps in (1, 4, 16):
        inf = {"steps": steps, "samples": 1, "sampler": "dpmpp_2m", "batch": 4}
        t0 = time.perf_counter()
        pred = superres_planes(den, lr, [(i, 0, 0) for i in range(len(lr))], srbench.F, gain, inf)
        dt = time.perf_counter() - t0
        psnr = float(np.mean([srbench.care_metrics(p, h)[0] for p, h in zip(pred[0], hr)]))
        mp = len(hr) * srbench.CROP**2 / 1e6
        rows.append({"task": "superres x2", "data": "simulated", "model": "teacher",
                     "sampler": f"DPM++(2M) {steps} step", "NFE": dm.nfe("dpmpp_2m", steps),
                     "AP@0.5": None, "mAP": None, "PSNR": psnr, "AUROC": None,
                     "s/MP": dt / mp})  # fmt: skip
        print(f"# {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--teacher", type=Path, default=SEGMENT_NUCLEI)
    ap.add_argument("--student", type=Path, default=FAST)
    ap.add_argument("--test", type=int, default=10, help="BBBC039 test images")
    ap.add_argument("--crop", type=int, default=384, help="centre crop edge (0: whole image)")
    ap.add_argument("--simulated-test", type=int, default=6)
    ap.add_argument("--sim-size", type=int, default=256)
    ap.add_argument("--sr-steps", type=int, default=300, help="SR training steps (0: skip SR)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    dm.set_threads(a.threads)
    models = {"teacher": Model.load(a.teacher, device="cpu"),
              "student": Model.load(a.student, device="cpu")}  # fmt: skip
    info = dm.read_config(a.student).get("distilled", {})
    rows = seg_rows(a, models)
    if a.sr_steps:
        rows += sr_rows(a)
    crop = f"{a.crop} x {a.crop} centre crops" if a.crop else "whole images"
    print(f"\nfew-NFE table (CPU, {a.threads} thread(s)); segmentation: BBBC039 test "
          f"{a.test} images ({crop}), simulated {a.simulated_test} x {a.sim_size}^2; "
          f"student: {a.student.name}, {info.get('rounds')} round(s) x "
          f"{info.get('steps_per_round')} steps from the teacher's "
          f"{info.get('teacher_steps')}-step DDIM; SR trained {a.sr_steps} steps; restore "
          "(denoise) is 1 NFE already\n")  # fmt: skip
    print("| task | data | model | sampler | NFE | AP@0.5 | mAP | PSNR | AUROC std | s/MP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['data']} | {r['model']} | {r['sampler']} | {r['NFE']} | "
              f"{fmt(r['AP@0.5'], '.3f')} | {fmt(r['mAP'], '.3f')} | {fmt(r['PSNR'], '.2f')} | "
              f"{fmt(r['AUROC'], '.3f')} | {r['s/MP']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
