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
N/2 ...). Each round is the engine's one loop (`train.train`) with `DistillLoss`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from .device import pick_device, set_threads
from .precond import sigma_tensor
from .schedules import check_sigmas
from .train import train


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


@dataclass
class DistillLoss:
    """The student's loss for `train`: on (x0, cond) batches, a student step s -> t drawn
    uniformly from the student's schedule, x_s = x0 + s eps, and the EDM-weighted squared
    error to the teacher's two-step target (`teacher_target`)."""

    teacher: object
    sigmas: torch.Tensor  # the teacher's schedule (2N steps ending at 0)

    def __call__(self, student, batch, generator) -> torch.Tensor:
        x0, cond = batch
        s_all = self.sigmas.to(torch.float32)
        n = (s_all.numel() - 1) // 2  # student steps
        i = torch.randint(0, n, (x0.shape[0],), generator=generator)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        s, m, t = (sigma_tensor(s_all[2 * i + j].to(x0.device), x0) for j in range(3))
        x = x0 + s * eps
        target = teacher_target(self.teacher, x, s, m, t, cond)
        sd = float(getattr(student, "sigma_data", 0.5))
        weight = (s**2 + sd**2) / (s * sd) ** 2
        return (weight * (student(x, s.reshape(-1), cond) - target) ** 2).mean()


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
    for r in range(rounds):
        n = (sig.numel() - 1) // 2
        result = train(
            student,
            source,
            steps,
            batch=batch,
            lr=lr,
            ema=ema,
            seed=seed + r,
            loss=DistillLoss(teacher, sig),
            weight_decay=0.01,
            checkpoint_every=0,
            progress=progress,
            device=dev,
            desc=f"distill {2 * n}->{n} steps",
        )
        losses += result.losses
        ema_student = result.denoiser
        sig = halve(sig)
        schedules.append(sig.tolist())
        if r + 1 < rounds:  # the next round's teacher is this round's student
            teacher = ema_student.requires_grad_(False)
            student = copy.deepcopy(ema_student).train().requires_grad_(True)
    cfg = {"method": "progressive distillation (Salimans & Ho 2022), DDIM",
           "rounds": rounds, "steps_per_round": steps, "batch": batch, "lr": lr, "ema": ema,
           "seed": seed, "schedules": schedules}  # fmt: skip
    return DistillResult(ema_student.eval(), sig, losses, cfg)
