"""Progressive distillation (Salimans & Ho 2022): a student that takes one deterministic DDIM
step where the teacher takes two.

The teacher's schedule `sigmas` (2N steps, ending at 0) is halved to the student's (every other
sigma, `halve`). A training example is x0 (and its condition) from a patch source, a student step
s -> t drawn uniformly from the student's schedule and x_s = x0 + s eps. The teacher takes its two
DDIM steps s -> m -> t from x_s; the target x0~ is the x0-prediction that makes one student DDIM
step land on the same point,

    x_t = x0~ + (t / s) (x_s - x0~)  =>  x0~ = (x_t - (t / s) x_s) / (1 - t / s)

(at t = 0 simply the teacher's two-step result), and the student regresses it with the EDM
weight (sigma^2 + sd^2) / (sigma sd)^2. The student starts as a copy of the teacher (or from a
given network); `rounds` > 1 repeats the halving with the last student as teacher (2N -> N ->
N/2 ...). Randomness of step k comes from `train.step_generators(seed, k)`, as in `train`.
"""

from __future__ import annotations

import copy
import logging
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from .device import pick_device, set_threads
from .precond import sigma_tensor
from .schedules import check_sigmas
from .train import _next_batch, step_generators

log = logging.getLogger("microdiff.diffusion")


@dataclass
class DistillResult:
    student: torch.nn.Module  # EMA weights: the model to sample with
    sigmas: torch.Tensor  # the student's schedule (sample it with DDIM on exactly these)
    losses: list[float] = field(default_factory=list)  # one per step, all rounds
    config: dict = field(default_factory=dict)


def halve(sigmas) -> torch.Tensor:
    """Every other sigma of a schedule of 2N steps ending at 0: the student's N-step schedule."""
    sig = check_sigmas(sigmas)
    n = sig.numel() - 1
    if n % 2 or float(sig[-1]) != 0.0:
        raise ValueError(f"distillation needs an even number of steps ending at 0, not {n}")
    return sig[0::2].clone()


def teacher_target(teacher, x, s, m, t, cond=None) -> torch.Tensor:
    """The x0-prediction whose one DDIM step s -> t equals the teacher's two steps s -> m -> t.

    s, m, t: per-batch tensors shaped like `precond.sigma_tensor` (t may be 0, s > m > t).
    """
    with torch.no_grad():
        d1 = teacher(x, s.reshape(-1), cond).to(x.dtype)
        xm = d1 + (m / s) * (x - d1)
        d2 = teacher(xm, m.reshape(-1), cond).to(x.dtype)
        xt = d2 + (t / m) * (xm - d2)
        r = t / s
        return (xt - r * x) / (1.0 - r)


def _round(teacher, student, source, sigmas, steps, batch, lr, ema, seed, dev, bar, losses):
    s_all = sigmas.to(torch.float32)
    n = (s_all.numel() - 1) // 2  # student steps
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    ema_model = copy.deepcopy(student).eval().requires_grad_(False)
    sd = float(getattr(student, "sigma_data", 0.5))
    it = None
    for k in range(steps):
        rng, gen = step_generators(seed, k)
        (x0, cond), it = _next_batch(source, batch, rng, it)
        x0 = x0.to(dev, torch.float32)
        cond = None if cond is None else cond.to(dev, torch.float32)
        i = torch.randint(0, n, (x0.shape[0],), generator=gen)
        eps = torch.randn(x0.shape, generator=gen).to(dev)
        s, m, t = (sigma_tensor(s_all[2 * i + j].to(dev), x0) for j in range(3))
        x = x0 + s * eps
        target = teacher_target(teacher, x, s, m, t, cond)
        weight = (s**2 + sd**2) / (s * sd) ** 2
        loss = (weight * (student(x, s.reshape(-1), cond) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        beta = min(ema, (k + 2) / (k + 11))
        with torch.no_grad():
            for pe, pm in zip(ema_model.parameters(), student.parameters()):
                pe.lerp_(pm, 1.0 - beta)
            for be, bm in zip(ema_model.buffers(), student.buffers()):
                be.copy_(bm)
        losses.append(float(loss.detach()))
        bar.update(1)
        if (k + 1) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            log.info("distill %d->%d steps: step %d loss %.5f", 2 * n, n, k + 1,
                     np.mean(losses[-50:]))  # fmt: skip
    return ema_model


def distill(
    teacher,
    source,
    sigmas,
    steps: int = 500,
    rounds: int = 1,
    batch: int = 8,
    lr: float = 1e-4,
    ema: float = 0.99,
    seed: int = 0,
    student: torch.nn.Module | None = None,
    device=None,
    threads: int | None = None,
    progress: bool = False,
) -> DistillResult:
    """Distil `teacher` (D(x, sigma, cond), sampled by DDIM on `sigmas`) into a student that
    needs half the steps per round: `rounds` rounds of `steps` optimizer steps each.

    `source`: as for `train` (`sample(n, rng) -> (x0, cond)`, a callable, or an iterable).
    `student`: the network to train (default: a copy of the teacher, which must then be a
    module). Returns the student (EMA weights, eval mode) and its schedule.
    """
    set_threads(threads)
    dev = pick_device(device or "auto")
    sig = check_sigmas(sigmas)
    check = sig
    for _ in range(rounds):  # every round needs an even number of steps
        check = halve(check)
    if student is None:
        if not isinstance(teacher, torch.nn.Module):
            raise ValueError("an analytic teacher needs a student network to train")
        student = copy.deepcopy(teacher)
    if isinstance(teacher, torch.nn.Module):
        teacher = teacher.to(dev).eval().requires_grad_(False)
    student = student.to(dev).train().requires_grad_(True)
    losses: list[float] = []
    schedules = [sig.tolist()]
    bar = tqdm(total=steps * rounds, disable=not progress, file=sys.stderr, desc="distill")
    for r in range(rounds):
        ema_student = _round(teacher, student, source, sig, steps, batch, lr, ema, seed + r,
                             dev, bar, losses)  # fmt: skip
        sig = halve(sig)
        schedules.append(sig.tolist())
        if r + 1 < rounds:  # the next round's teacher is this round's student
            teacher = ema_student.requires_grad_(False)
            student = copy.deepcopy(ema_student).train().requires_grad_(True)
    bar.close()
    cfg = {"method": "progressive distillation (Salimans & Ho 2022), DDIM",
           "rounds": rounds, "steps_per_round": steps, "batch": batch, "lr": lr, "ema": ema,
           "seed": seed, "schedules": schedules}  # fmt: skip
    return DistillResult(ema_student.eval(), sig, losses, cfg)
