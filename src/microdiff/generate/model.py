"""The mask-conditioned image model: a diffusion UNet on the engine that generates a normalized
image given an instance mask (and the objects' classes, where known).

Condition planes, all in [-1, 1]: foreground, inner boundary, the per-object normalized distance
to the border (the segment stage's representation, so the model sees the same shape encoding)
and, with classes, one plane per class (+1 on the objects of that class). The target is the
percentile-normalized image mapped to 2 * image - 1 (all its channels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import diffusion as dm
from ..diffusion import accel
from ..label_maps import inner_boundaries, representation
from ..tiling import sample_patch_boxes

TASK = "generate"


def condition(labels: np.ndarray, classes=None, n_classes: int = 0) -> np.ndarray:
    """Instance labels (Y, X) -> (3 + n_classes, Y, X) float32 condition planes in [-1, 1].

    classes: class of id i + 1 at index i (a sequence), or None."""
    labels = np.asarray(labels)
    rep = representation(labels)
    edge = inner_boundaries(labels).astype(np.float32) * 2 - 1
    planes = [rep[0], edge, rep[1]]
    if n_classes:
        lut = np.full(int(labels.max()) + 1, -1, np.int64)
        if classes is not None and len(classes):
            lut[1 : len(classes) + 1] = np.asarray(classes, np.int64)[: int(labels.max())]
        cl = lut[labels]
        planes += [np.where(cl == c, 1.0, -1.0).astype(np.float32) for c in range(n_classes)]
    return np.stack(planes).astype(np.float32)


def contrast(image: np.ndarray, labels: np.ndarray) -> float:
    """(mean inside objects - mean outside) / std outside, channel 0: objects where the mask
    says make this large; a mask unrelated to the image gives about 0."""
    img = np.asarray(image, np.float32)
    img = img[0] if img.ndim == 3 else img
    fg = np.asarray(labels) > 0
    if not fg.any() or fg.all():
        return float("nan")
    bg = img[~fg]
    return float((img[fg].mean() - bg.mean()) / max(float(bg.std()), 1e-6))


def to_target(image: np.ndarray) -> np.ndarray:
    """Normalized image (C, Y, X; about [0, 1]) -> diffusion target."""
    return np.clip(2.0 * np.asarray(image, np.float32) - 1.0, -1.5, 3.0)


def from_target(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float32) + 1.0) / 2.0


class PairPatches:
    """Training patches (image target, condition) from annotated pairs held in memory, with the
    same random flips and 90-degree rotations of both; boxes from `tiling.sample_patch_boxes`
    (images smaller than the patch are padded: reflect for the image, background for labels)."""

    def __init__(self, images, labels, classes=None, n_classes: int = 0, patch: int = 64):
        self.patch = int(patch)
        self.data = []
        h = hashlib.sha256()
        for i, (img, lab) in enumerate(zip(images, labels)):
            img, lab = np.asarray(img, np.float32), np.asarray(lab)
            pad = [(0, max(0, self.patch - n)) for n in lab.shape]
            if any(p[1] for p in pad):
                img = np.pad(img, [(0, 0), *pad], mode="reflect")
                lab = np.pad(lab, pad)
            cl = classes[i] if classes is not None else None
            cond = condition(lab, cl, n_classes).astype(np.float16)
            self.data.append((to_target(img), cond))
            h.update(np.ascontiguousarray(img[:, ::5, ::5]).tobytes())
            h.update(np.ascontiguousarray(lab[::5, ::5]).tobytes())
        if not self.data:
            raise ValueError("no annotated pairs to train on")
        sizes = np.array([float(t.shape[1] * t.shape[2]) for t, _ in self.data])
        self.p = sizes / sizes.sum()
        self.data_hash = h.hexdigest()[:16]

    def sample(self, n: int, rng: np.random.Generator):
        ts, cs = [], []
        for _ in range(n):
            t, c = self.data[int(rng.choice(len(self.data), p=self.p))]
            box = sample_patch_boxes(t.shape[1:], self.patch, 1, rng)[0]
            t, c = t[(slice(None), *box.slices)], c[(slice(None), *box.slices)]
            t, c = dm.augment(t, rng, c)
            ts.append(t.astype(np.float32, copy=False))
            cs.append(c.astype(np.float32, copy=False))
        return torch.from_numpy(np.stack(ts)), torch.from_numpy(np.stack(cs))


def build(channels: int = 1, n_classes: int = 0, width: int = 32, depth: int = 3) -> dm.Denoiser:
    return dm.build(channels, 3 + n_classes, width, depth)


def train_generator(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    out,
    classes=None,
    n_classes: int = 0,
    channel_names: Sequence[str] | None = None,
    steps: int = 2000,
    batch: int = 8,
    patch: int = 64,
    width: int = 32,
    depth: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int | None = None,
    device=None,
    progress: bool = False,
    extra_config: dict | None = None,
) -> dm.TrainResult:
    """Train the mask-conditioned image model on (normalized image (C, Y, X), labels (Y, X))
    pairs and write its checkpoint directory `out`."""
    source = PairPatches(images, labels, classes, n_classes, patch)
    chans = int(np.asarray(images[0]).shape[0])
    den = build(chans, n_classes, width, depth)
    cfg = {
        "task": TASK,
        "generate": {
            "channels": chans,
            "channel_names": list(channel_names or [f"c{i}" for i in range(chans)]),
            "n_classes": int(n_classes),
            "condition": "fg+boundary+dist" + ("+classes" if n_classes else ""),
            "target": "2 * percentile-normalized image - 1",
        },
        **(extra_config or {}),
    }
    return dm.train(
        den,
        source,
        steps=steps,
        batch=batch,
        lr=lr,
        seed=seed,
        warmup=min(100, max(steps // 10, 1)),
        checkpoint_path=out,
        checkpoint_every=max(steps // 4, 1),
        threads=threads,
        device=device,
        progress=progress,
        config=cfg,
        log_every=100,
    )


@dataclass
class Generator:
    denoiser: torch.nn.Module
    channels: int
    n_classes: int
    channel_names: list[str]
    hash: str | None = None

    @classmethod
    def load(cls, path, device="auto") -> Generator:
        den, cfg = dm.load_checkpoint(path, dm.pick_device(device), task=TASK)
        g = cfg[TASK]
        return cls(
            den.eval(), int(g["channels"]), int(g["n_classes"]), list(g["channel_names"]),
            cfg.get("params_hash"),
        )  # fmt: skip


def synthesize(
    gen: Generator,
    labels: Sequence[np.ndarray],
    classes: Sequence | None = None,
    seed: int = 0,
    sampler: str = "dpmpp_2m",
    steps: int = 12,
    sigma_max: float = 40.0,
    sigma_min: float = 0.01,
    origins=None,
) -> list[np.ndarray]:
    """Images (C, Y, X) float32, normalized units, for label images of one shape (a batch).

    Noise is `PositionalNoise(seed, origins)` keyed by global pixel position, so the same labels,
    seed, origins and model give the same images whatever the batching; default origins
    (b * 2^20, 0) for batch slot b."""
    if not len(labels):
        return []
    cond = np.stack([
        condition(lab, None if classes is None else classes[i], gen.n_classes)
        for i, lab in enumerate(labels)
    ])  # fmt: skip
    dev = next(gen.denoiser.parameters()).device
    den = accel.prepare(gen.denoiser, dev)
    c = accel.to_device(cond, dev)
    shape = (len(labels), gen.channels, *cond.shape[2:])
    origins = origins or [(b << 20, 0) for b in range(len(labels))]
    noise = dm.PositionalNoise(seed, origins)
    sig = dm.karras_sigmas(steps, sigma_min=sigma_min, sigma_max=sigma_max)
    x = dm.initial_noise(noise, shape, float(sig[0]), device=dev)
    with torch.no_grad():
        x = dm.sample(sampler, den, x, sig, cond=c, generator=noise)
    return [from_target(v) for v in x.float().cpu().numpy()]
