"""The diffusion representation: a denoiser trained self-supervised on object crops, whose
pooled internal activations at chosen noise levels are each object's embedding.

Training needs no labels: every object's crop (labelled or not) is a training image for the
engine's one loop (EDM loss), with random flips, 90-degree rotations and a small per-channel
brightness/contrast jitter. The embedding of a crop x: for each noise level sigma_l, the crop
is noised with a fixed, seeded draw (x + sigma_l eps_l, the same eps for every crop, so an
object's embedding does not depend on its batch), passed once through D, and the output of every
encoder level, the middle block and every decoder level is averaged over space (global average
pooling). With `views` > 1 the embedding is averaged over that many dihedral views of the crop.
Cost: levels x views network evaluations (NFE) per object.

A light classifier on the embedding (alone, or joined with the morphology features): logistic
regression on standardised columns, class weights (balanced or none) and the inverse
regularisation C chosen on a validation split by macro-F1 (`fit_light`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..diffusion import Denoiser, UNet, load_checkpoint, pick_device, set_threads, train

log = logging.getLogger("microdiff.classify.represent")

TASK = "classify-representation"
SIGMAS = (0.1, 0.3)


def build_denoiser(channels: int, width: int = 16, depth: int = 3) -> Denoiser:
    """The unconditional EDM denoiser the representation comes from."""
    return Denoiser(UNet(in_channels=channels, width=width, depth=depth), sigma_data=0.5)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """View k (0-7) of the dihedral group: k % 4 quarter turns, a flip when k >= 4."""
    x = x.flip(-1) if k >= 4 else x
    return torch.rot90(x, k % 4, dims=(-2, -1))


class AugmentedCrops:
    """Training batches (x0, None): crops drawn uniformly, a random dihedral view each, and a
    per-channel jitter v -> a v + b (a in 1 +- `contrast`, b in +- `brightness`)."""

    def __init__(self, crops: np.ndarray, brightness: float = 0.05, contrast: float = 0.05):
        from .lowest_error import _hash_array

        self.crops = torch.as_tensor(np.asarray(crops, np.float32))
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.data_hash = _hash_array(self.crops.numpy())

    def sample(self, n: int, rng: np.random.Generator):
        idx = rng.integers(0, len(self.crops), n)
        views = rng.integers(0, 8, n)
        x = torch.stack([dihedral(self.crops[i], int(v)) for i, v in zip(idx, views)])
        c = x.shape[1]
        a = 1.0 + rng.uniform(-self.contrast, self.contrast, (n, c, 1, 1))
        b = rng.uniform(-self.brightness, self.brightness, (n, c, 1, 1))
        return x * torch.as_tensor(a, dtype=torch.float32) + torch.as_tensor(
            b, dtype=torch.float32
        ), None


def train_representation(
    crops: np.ndarray,
    steps: int = 2000,
    batch: int = 32,
    lr: float = 2e-3,
    width: int = 16,
    depth: int = 3,
    seed: int = 0,
    checkpoint_path=None,
    threads: int | None = None,
    device=None,
    jitter: float = 0.05,
    extra: dict | None = None,
):
    """Train the denoiser on all crops (no labels); the engine's TrainResult."""
    torch.manual_seed(seed)
    den = build_denoiser(crops.shape[1], width, depth)
    config = {
        "task": TASK,
        "crop_size": int(crops.shape[-1]),
        "channels": int(crops.shape[1]),
        "n_train": int(len(crops)),
        **(extra or {}),
    }
    return train(
        den,
        AugmentedCrops(crops, jitter, jitter),
        steps=steps,
        batch=batch,
        lr=lr,
        seed=seed,
        checkpoint_path=checkpoint_path,
        checkpoint_every=0,
        log_every=max(steps // 20, 1),
        progress=False,
        device=device,
        threads=threads,
        warmup=min(100, steps // 10),
        config=config,
    )


def load_representation(path, device="cpu") -> tuple[Denoiser, dict]:
    den, cfg = load_checkpoint(path, device=device)
    if cfg.get("task") != TASK:
        raise ValueError(f"{path}: not a representation checkpoint (task {cfg.get('task')})")
    return den, cfg


def _blocks(net: UNet) -> list[torch.nn.Module]:
    return [blocks[-1] for blocks in net.down] + [net.mid2] + [blocks[-1] for blocks in net.up]


@torch.no_grad()
def embed(
    denoiser: Denoiser,
    crops: np.ndarray,
    sigmas: Sequence[float] = SIGMAS,
    views: int = 1,
    seed: int = 0,
    batch: int = 256,
    device=None,
    threads: int | None = None,
) -> np.ndarray:
    """(N, D) float32 embedding: pooled block outputs per noise level, levels concatenated,
    averaged over `views` dihedral views. NFE per object = len(sigmas) * views."""
    set_threads(threads)
    dev = pick_device(device or "auto")
    den = denoiser.to(dev).eval()
    pooled: list[torch.Tensor] = []
    hooks = [
        b.register_forward_hook(lambda m, i, o: pooled.append(o.mean(dim=(-2, -1))))
        for b in _blocks(den.net)
    ]
    n, c, *shape = crops.shape
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn((len(sigmas), c, *shape), generator=gen).to(dev)
    out = []
    try:
        for start in range(0, n, batch):
            x = torch.as_tensor(crops[start : start + batch], dtype=torch.float32).to(dev)
            per_view = []
            for v in range(views):
                xv = dihedral(x, v)
                levels = []
                for li, s in enumerate(sigmas):
                    pooled.clear()
                    den(xv + float(s) * eps[li], float(s))
                    levels.append(torch.cat(pooled, dim=1))
                per_view.append(torch.cat(levels, dim=1))
            out.append(torch.stack(per_view).mean(0).cpu().numpy())
    finally:
        for h in hooks:
            h.remove()
    width = sum(b.conv2.out_channels for b in _blocks(den.net)) * len(sigmas)
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


def fit_light(
    X: np.ndarray,
    y: np.ndarray,
    validation: np.ndarray,
    seed: int = 0,
    cs: Sequence[float] = (0.03, 0.1, 0.3, 1.0),
    weights: Sequence[str | None] = ("balanced", None),
):
    """Logistic regression on standardised X; `(model, choice)`.

    `validation` (boolean) marks the rows that choose C and the class weighting by macro-F1;
    the model is then refitted on all rows with the choice."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(c, w):
        lr = LogisticRegression(C=c, class_weight=w, max_iter=300, random_state=seed)
        return make_pipeline(StandardScaler(), lr)

    X, y, val = np.asarray(X, np.float64), np.asarray(y), np.asarray(validation, bool)
    best, choice = -1.0, {"C": cs[-1], "class_weight": weights[0], "validation_f1_macro": None}
    if val.any() and (~val).any() and len(np.unique(y[~val])) >= 2:
        for w in weights:
            for c in cs:
                pred = make(c, w).fit(X[~val], y[~val]).predict(X[val])
                f1 = float(f1_score(y[val], pred, average="macro"))
                if f1 > best:
                    best, choice = f1, {"C": c, "class_weight": w, "validation_f1_macro": f1}
    return make(choice["C"], choice["class_weight"]).fit(X, y), choice


def joined(embedding: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Embedding and morphology features side by side (missing features: column median)."""
    f = np.asarray(features, np.float64)
    med = np.nanmedian(f, axis=0) if len(f) else np.zeros(f.shape[1])
    f = np.where(np.isnan(f), np.nan_to_num(med), f)
    return np.concatenate([np.asarray(embedding, np.float64), f], axis=1)
