"""Distil the shipped nuclei model into a one-step student (models/segment_nuclei_fast/).

Progressive distillation (`microdiff.diffusion.distill`, Salimans & Ho 2022): the teacher is the
shipped model sampled by DDIM on the segment stage's schedule (`segment.model.posterior(steps=2)`:
sigma 5 -> 0.5 -> 0); the student (a copy of it) learns to land in one step 5 -> 0 where the
teacher lands in two, so `segment.steps: 1` with this model costs half the network evaluations.
Data as for the teacher (tools/train_default_segment.py): simulated nuclei and, with --data, the
BBBC039 training part. Run once by a maintainer, e.g.

    python tools/distill_segment.py --data ../shared/data --steps 800 --threads 2
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from train_default_segment import bbbc039_pairs, simulated_pairs

from microdiff import diffusion as dm
from microdiff.segment.model import TASK, Model, posterior
from microdiff.segment.represent import PairSource
from microdiff.shipped import SEGMENT_NUCLEI
from microdiff.shipped import SEGMENT_NUCLEI_FAST as OUT

KEEP = ("task", "segment", "trained_on", "training", "data_hash")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="folder holding bbbc039_nuclei/ (optional)")
    ap.add_argument("--teacher", type=Path, default=SEGMENT_NUCLEI)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--init", type=Path, help="continue from this student checkpoint")
    ap.add_argument("--teacher-steps", type=int, default=2, help="2^rounds x the student's")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=800, help="optimizer steps per round")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--simulated", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0, help="another seed for a continued run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t = time.time()
    images, labels = simulated_pairs(a.simulated)
    sources = [f"simulate x{a.simulated}"]
    if a.data:
        bi, bl = bbbc039_pairs(a.data)
        images, labels = images + bi, labels + bl
        sources.append(f"bbbc039 train part x{len(bi)}")
    teacher = Model.load(a.teacher, device=a.device)
    cfg = dm.read_config(a.teacher)
    logging.info("data ready in %.0f s: %s", time.time() - t, sources)
    sig = posterior(steps=a.teacher_steps).schedule()
    init = Model.load(a.init, device=a.device).denoiser if a.init else None
    res = dm.distill(teacher.denoiser, PairSource(images, labels, patch=a.patch), sig,
                     steps=a.steps, rounds=a.rounds, batch=a.batch, lr=a.lr, device=a.device,
                     threads=a.threads, progress=True, student=init, seed=a.seed)  # fmt: skip
    student_steps = len(res.sigmas) - 1
    if not np.allclose(res.sigmas.numpy(), posterior(steps=student_steps).schedule().numpy()):
        logging.warning("the student's schedule %s is not the segment stage's (%d steps)",
                        res.sigmas.tolist(), student_steps)  # fmt: skip
    out = {k: cfg[k] for k in KEEP if k in cfg}
    out.update(task=TASK, script="tools/distill_segment.py", distilled=dict(
        res.config, teacher=cfg.get("params_hash"), teacher_steps=a.teacher_steps,
        student_steps=student_steps, data=sources, patch=a.patch,
        continued_from=dm.read_config(a.init).get("distilled") if a.init else None))  # fmt: skip
    dm.save_checkpoint(a.out, res.student, out)
    logging.info("distilled %d rounds x %d steps in %.0f s, last loss %.4f (first %.4f)",
                 a.rounds, a.steps, time.time() - t, float(np.mean(res.losses[-100:])),
                 float(np.mean(res.losses[:50])))  # fmt: skip


if __name__ == "__main__":
    main()
