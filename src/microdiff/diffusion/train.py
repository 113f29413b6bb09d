"""The engine's one training loop: AdamW, gradient-norm clipping, an EMA of the weights, a
learning-rate warm-up (and optional cosine decay), checkpoints and exact resume.

What is learned is the loss passed in: a callable `loss(model, batch, generator) -> scalar`
computing one batch's loss from the batch the patch source drew (tensors on the training
device) and the step's torch generator. `EDMLoss` (the default) is denoising score matching
with EDM weighting (Karras et al. 2022): sigma ~ exp(N(P_mean, P_std^2)) per patch,
x = x0 + sigma eps, loss lambda(sigma) |D(x, sigma, cond) - x0|^2 with
lambda = (sigma^2 + sd^2) / (sigma sd)^2, bf16 autocast on CUDA. Restore training passes its
SURE / supervised loss (`restore.denoise.RestoreLoss`), progressive distillation the teacher's
two-step target (`distill.DistillLoss`).

All randomness of step k comes from generators seeded by (seed, k), so a run killed and resumed
from its checkpoint (`resume=True`) gives exactly the weights of an uninterrupted run (on CPU).
The checkpoint holds the EMA weights as the model, and the raw weights, optimizer state and step
as its training state.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import CONFIG, load_checkpoint, load_train_state, save_checkpoint
from .device import pick_device, set_threads
from .precond import Denoiser

log = logging.getLogger("microdiff.diffusion")

# loss(model, batch, generator) -> scalar tensor; batch: the source's tuple on the device
Loss = Callable[[torch.nn.Module, tuple, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    denoiser: Denoiser  # EMA weights: the model to sample with
    model: Denoiser  # raw (last-step) weights
    losses: list[float] = field(default_factory=list)  # one per step, from step 0
    step: int = 0
    config: dict = field(default_factory=dict)


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The numpy (patches) and torch (sigma, noise) generators of training step `step`."""
    ss = np.random.SeedSequence([int(seed), int(step)])
    rng = np.random.default_rng(ss)
    tseed = int(ss.spawn(1)[0].generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return rng, torch.Generator().manual_seed(tseed)


def edm_loss(
    denoiser, x0, cond, generator: torch.Generator, p_mean=-1.2, p_std=1.2, autocast: bool = False
) -> torch.Tensor:
    """EDM-weighted denoising loss of one batch (noise drawn on CPU from `generator`)."""
    b = x0.shape[0]
    sigma = (torch.randn(b, generator=generator) * p_std + p_mean).exp().to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    s = sigma.view(-1, *([1] * (x0.ndim - 1)))
    sd = denoiser.sigma_data
    weight = (s**2 + sd**2) / (s * sd) ** 2
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        d = denoiser(x0 + s * eps, sigma, cond)
    return (weight * (d.float() - x0) ** 2).mean()


@dataclass(frozen=True)
class EDMLoss:
    """Denoising score matching on (x0, cond) batches, bf16 autocast on CUDA (`edm_loss`)."""

    p_mean: float = -1.2
    p_std: float = 1.2

    @property
    def config(self) -> dict:
        return {"p_mean": self.p_mean, "p_std": self.p_std}

    def __call__(self, model, batch, generator) -> torch.Tensor:
        x0, cond = batch
        cuda = x0.device.type == "cuda"
        return edm_loss(model, x0, cond, generator, self.p_mean, self.p_std, autocast=cuda)


def _next_batch(source, n, rng, it):
    """A batch from `source` (see `train`) and the iterator to continue an iterable with."""
    if hasattr(source, "sample"):
        return source.sample(n, rng), it
    if callable(source):
        return source(n, rng), it
    if it is None:
        warnings.warn("an iterable patch source cannot be resumed exactly", stacklevel=3)
        it = iter(source)
    return next(it), it


def _to(batch, dev) -> tuple:
    """The batch on `dev`, floating tensors as float32."""
    return tuple(
        None if t is None else t.to(dev, torch.float32) if t.is_floating_point() else t.to(dev)
        for t in batch
    )


def learning_rate(lr: float, k: int, steps: int, warmup: int, decay_to: float | None) -> float:
    """The learning rate of step k: `lr` after a linear warm-up over `warmup` steps, times, with
    `decay_to`, a cosine from 1 at step 0 down to `decay_to` at step `steps`."""
    rate = lr * min(1.0, (k + 1) / warmup) if warmup else lr
    if decay_to is not None:
        half = (1.0 - decay_to) / 2
        rate *= (1.0 - half) + half * np.cos(np.pi * k / max(steps, 1))
    return float(rate)


def train(
    denoiser: torch.nn.Module,
    patch_source,
    steps: int,
    batch: int = 16,
    lr: float = 1e-3,
    ema: float = 0.999,
    seed: int = 0,
    checkpoint_path=None,
    checkpoint_every: int = 500,
    log_every: int = 50,
    progress: bool = True,
    device=None,
    resume: bool = False,
    loss: Loss | None = None,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    warmup: int = 0,
    decay_to: float | None = None,
    threads: int | None = None,
    config: dict | None = None,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train `denoiser` for `steps` optimizer steps in total (counting resumed ones).

    `patch_source`: an object with `sample(n, rng) -> batch` (a tuple of tensors or None; (x0,
    cond) for the EDM loss), a callable with that signature, or an iterable of batches (not
    exactly resumable). `loss`: see the module docstring; default `EDMLoss()`.
    Writes a checkpoint every `checkpoint_every` steps and at the end when `checkpoint_path` is
    given; with `resume=True` an existing checkpoint there is continued. `callback(k,
    ema_model)` runs every `log_every` steps (diagnostics).
    """
    set_threads(threads)
    dev = pick_device(device or "auto")
    loss_fn = EDMLoss() if loss is None else loss
    model = denoiser.to(dev).train()
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    start, losses = 0, []
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    if resume and ckpt is not None and (ckpt / CONFIG).is_file():
        state = load_train_state(ckpt, device="cpu")
        if state is None:
            raise ValueError(f"{ckpt} has no training state to resume from")
        ema_loaded, _ = load_checkpoint(ckpt, device=dev)
        model.load_state_dict(state["model"])
        ema_model.load_state_dict(ema_loaded.state_dict())
        opt.load_state_dict(state["optimizer"])
        start, losses = int(state["step"]), [float(v) for v in state["losses"]]
        log.info("resuming %s at step %d", ckpt, start)
    hparams = dict(
        batch=batch,
        lr=lr,
        ema=ema,
        seed=seed,
        **getattr(loss_fn, "config", {}),
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        warmup=warmup,
    )
    if decay_to is not None:
        hparams["decay_to"] = decay_to
    cfg = dict(config or {})
    cfg.setdefault("data_hash", getattr(patch_source, "data_hash", None))

    def checkpoint(step):
        if ckpt is None:
            return
        cfg["training"] = dict(hparams, steps=step)
        extra = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "step": step,
            "losses": torch.tensor(losses, dtype=torch.float64),
        }
        save_checkpoint(ckpt, ema_model, cfg, extra_state=extra)

    it = None
    bar = tqdm(total=steps, initial=start, disable=not progress, file=sys.stderr, desc=desc,
               dynamic_ncols=True)  # fmt: skip
    for k in range(start, steps):
        rng, gen = step_generators(seed, k)
        data, it = _next_batch(patch_source, batch, rng, it)
        for g in opt.param_groups:
            g["lr"] = learning_rate(lr, k, steps, warmup, decay_to)
        value = loss_fn(model, _to(data, dev), gen)
        opt.zero_grad(set_to_none=True)
        value.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        beta = min(ema, (k + 2) / (k + 11))
        with torch.no_grad():
            for pe, pm in zip(ema_model.parameters(), model.parameters()):
                pe.lerp_(pm, 1.0 - beta)
            for be, bm in zip(ema_model.buffers(), model.buffers()):
                be.copy_(bm)
        losses.append(float(value.detach()))
        bar.update(1)
        if log_every and (k + 1) % log_every == 0:
            recent = float(np.mean(losses[-log_every:]))
            bar.set_postfix(loss=f"{recent:.4f}")
            log.info("%s: step %d loss %.5f", desc, k + 1, recent)
            if callback is not None:
                callback(k + 1, ema_model)
        if checkpoint_every and (k + 1) % checkpoint_every == 0 and k + 1 < steps:
            checkpoint(k + 1)
    bar.close()
    if start < steps or not (ckpt and (ckpt / CONFIG).is_file()):
        checkpoint(max(steps, start))
    cfg["training"] = dict(hparams, steps=max(steps, start))
    return TrainResult(ema_model, model.eval(), losses, max(steps, start), cfg)
