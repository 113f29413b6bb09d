"""A diffusion model as a classifier: the class whose conditioning denoises best wins.

Li et al. 2023 ("Your diffusion model is secretly a zero-shot classifier") and Clark & Jaini 2023
("Text-to-image diffusion models are zero-shot classifiers"): a class-conditional denoiser
D(x, sigma, c) trained on object crops gives, for a crop x and each class c, the expected
denoising error

    E_c(x) = mean over a fixed set of noise levels sigma_l and trials t of
             |D(x + sigma_l eps_lt, sigma_l, c) - x|^2 / sigma_l^2      (the epsilon error)

which approximates -log p(x | c) up to a constant (the ELBO); the prediction is argmin_c E_c.
The noise (eps_lt) is the same for every class (paired comparison: differences between classes
are not drowned by noise variance), and fixed by `seed`, so the result does not depend on the
batch an object lands in. Probabilities are softmax(-E_c / T) with a temperature fitted on
labelled crops (`calibrate_temperature`).

The network is the engine's `UNet` with `cond_channels = n_classes`: the class enters as
one-hot constant planes concatenated to the input. Crops are `size` x `size` pixels around the
object's centroid (3D: the centroid's z-plane), all channels, normalised per channel with the
sample's statistics (`normalize.Normalizer`) and mapped to about [-1, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..diffusion import Denoiser, build, load_checkpoint, pick_device, set_threads
from .crops import (
    crop_pool,
    dihedral,
    experiment_crops,
    hash_arrays,
    heldout_config,
    holdout_split,
    labelled,
    train_on_crops,
)

log = logging.getLogger("microdiff.classify")

TASK = "classify-diffusion"


def build_denoiser(channels: int, n_classes: int, width: int = 32, depth: int = 3) -> Denoiser:
    """A class-conditional EDM denoiser: UNet with one one-hot plane per class as conditioning."""
    return build(channels, n_classes, width, depth)


def one_hot_planes(classes, n_classes: int, shape: Sequence[int]) -> torch.Tensor:
    """(B, n_classes, *shape) float32 constant planes: 1 in the plane of each class."""
    idx = torch.as_tensor(np.asarray(classes), dtype=torch.long)
    hot = torch.nn.functional.one_hot(idx, n_classes).float()
    return hot.view(len(idx), n_classes, *([1] * len(shape))).expand(-1, -1, *shape).contiguous()


class CropSource:
    """Training batches (x0, one-hot cond) of labelled crops: classes drawn uniformly (so rare
    classes are seen as often as common ones), then a crop of that class, randomly flipped and
    rotated by multiples of 90 degrees. `sample(n, rng)` is seeded by the caller's generator."""

    def __init__(self, crops: np.ndarray, y: np.ndarray, n_classes: int):
        self.crops = torch.as_tensor(np.asarray(crops, np.float32))
        self.y = np.asarray(y, np.int64)
        self.n_classes = n_classes
        self.by_class = [np.flatnonzero(self.y == k) for k in range(n_classes)]
        self.present = [k for k in range(n_classes) if len(self.by_class[k])]
        self.data_hash = hash_arrays(self.crops.numpy(), self.y)

    def sample(self, n: int, rng: np.random.Generator):
        ks = rng.choice(self.present, n)
        idx = np.array([rng.choice(self.by_class[k]) for k in ks])
        x = self.crops[idx]
        rot, flip = rng.integers(0, 4, n), rng.integers(0, 2, n)
        x = torch.stack([dihedral(xi, int(r) + 4 * int(f)) for xi, r, f in zip(x, rot, flip)])
        return x, one_hot_planes(ks, self.n_classes, x.shape[-2:])


def train_classifier(
    crops: np.ndarray,
    y: Sequence,
    classes: Sequence,
    steps: int = 2000,
    batch: int = 64,
    lr: float = 1e-3,
    width: int = 32,
    depth: int = 3,
    seed: int = 0,
    checkpoint_path=None,
    threads: int | None = None,
    device=None,
    progress: bool = False,
    extra: dict | None = None,
):
    """Train the class-conditional denoiser on labelled crops; returns the engine's TrainResult.

    `y` holds class names (members of `classes`); the checkpoint config records the task, the
    class order and the crop size, so `load_classifier` can rebuild everything.
    """
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    yi = np.array([index[c] for c in y], np.int64)
    torch.manual_seed(seed)
    den = build_denoiser(crops.shape[1], len(classes), width, depth)
    config = {
        "task": TASK,
        "classes": classes,
        "class_counts": {str(c): int((yi == i).sum()) for i, c in enumerate(classes)},
        **(extra or {}),
    }
    return train_on_crops(
        den,
        CropSource(crops, yi, len(classes)),
        crops,
        config,
        steps,
        batch,
        lr,
        seed=seed,
        checkpoint_path=checkpoint_path,
        threads=threads,
        device=device,
        progress=progress,
    )


def load_classifier(path, device="cpu") -> tuple[Denoiser, dict]:
    """A checkpoint written by `train_classifier` (refuses other tasks' checkpoints)."""
    return load_checkpoint(path, device, task=TASK)


def noise_levels(n: int = 8, sigma_min: float = 0.05, sigma_max: float = 2.0) -> np.ndarray:
    """The fixed noise levels of the error estimate: geometric from sigma_min to sigma_max."""
    return np.geomspace(sigma_min, sigma_max, n) if n > 1 else np.array([sigma_min])


@torch.no_grad()
def denoising_errors(
    denoiser: Denoiser,
    crops: np.ndarray,
    n_classes: int,
    sigmas: Sequence[float] | None = None,
    trials: int = 2,
    seed: int = 0,
    batch: int = 256,
    device=None,
    threads: int | None = None,
) -> np.ndarray:
    """(N, n_classes) mean epsilon error of each crop under each class's conditioning.

    One noise draw per (level, trial), seeded, shared by every class and every crop.
    """
    set_threads(threads)
    dev = pick_device(device or "auto")
    den = denoiser.to(dev).eval()
    sigmas = noise_levels() if sigmas is None else np.asarray(sigmas, np.float64)
    n, c, *shape = crops.shape
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn((len(sigmas), trials, c, *shape), generator=gen).to(dev)
    errors = np.zeros((n, n_classes), np.float64)
    per = max(batch // n_classes, 1)
    planes = one_hot_planes(np.arange(n_classes), n_classes, shape).to(dev)
    for start in range(0, n, per):
        x = torch.as_tensor(crops[start : start + per], dtype=torch.float32).to(dev)
        b = len(x)
        xk = x.repeat_interleave(n_classes, 0)  # (b * K, C, H, W): crop-major, class-minor
        cond = planes.repeat(b, 1, 1, 1)
        total = torch.zeros(b * n_classes, device=dev)
        for li, s in enumerate(sigmas):
            for t in range(trials):
                noisy = xk + float(s) * eps[li, t]
                d = den(noisy, float(s), cond)
                total += ((d - xk) ** 2).flatten(1).mean(1) / float(s) ** 2
        errors[start : start + b] = (total / (len(sigmas) * trials)).view(b, n_classes).cpu()
    return errors


def log_prior(counts: Sequence[float] | None, n_classes: int) -> np.ndarray:
    """log p(c) from class counts, add-one smoothed (so no class is ruled out); uniform (zeros)
    without counts."""
    if counts is None:
        return np.zeros(n_classes)
    c = np.asarray(counts, np.float64) + 1.0
    return np.log(c / c.sum())


def probabilities(
    errors: np.ndarray, temperature: float = 1.0, prior: np.ndarray | None = None
) -> np.ndarray:
    """softmax(-errors / temperature + log prior) per row: p(c | x) when -errors / T is
    log p(x | c) up to a constant."""
    z = -np.asarray(errors, np.float64) / max(float(temperature), 1e-12)
    if prior is not None:
        z = z + np.asarray(prior, np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def calibrate_temperature(errors: np.ndarray, y: np.ndarray, prior=None) -> float:
    """The temperature (log grid) that minimises the negative log-likelihood of labels `y`
    (class indices) under `probabilities(errors, T, prior)`; 1.0 without labels."""
    y = np.asarray(y, np.int64)
    if len(y) == 0:
        return 1.0
    spread = float(np.median(np.ptp(errors, axis=1))) or 1.0
    grid = spread * np.geomspace(1e-3, 1e3, 121)
    rows = np.arange(len(y))
    nll = [-np.log(probabilities(errors, t, prior)[rows, y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def classify_crops(
    denoiser: Denoiser,
    crops: np.ndarray,
    classes: Sequence,
    temperature: float | None = None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    class_counts: Sequence[float] | None = None,
    **kwargs,
) -> tuple[pd.DataFrame, dict]:
    """Class and `prob_<class>` per crop, plus `info` (errors' temperature, levels, trials).

    `calibration` = (crops, class indices) fits the temperature when none is given. Without
    `class_counts` the class is the lowest error (maximum likelihood, Li et al.); with them
    (e.g. the training set's) it is the most probable under Bayes' rule with that prior, the
    temperature fitted jointly. Keyword arguments go to `denoising_errors` (sigmas, trials,
    seed, batch, device, threads).
    """
    classes = list(classes)
    k = len(classes)
    errors = denoising_errors(denoiser, crops, k, **kwargs)
    prior = None if class_counts is None else log_prior(class_counts, k)
    if temperature is None and calibration is not None and len(calibration[1]):
        cal_err = denoising_errors(denoiser, calibration[0], k, **kwargs)
        temperature = calibrate_temperature(cal_err, calibration[1], prior)
    temperature = 1.0 if temperature is None else temperature
    proba = probabilities(errors, temperature, prior)
    best = errors.argmin(axis=1) if prior is None else proba.argmax(axis=1)
    out = pd.DataFrame({"class": np.asarray(classes, dtype=object)[best]})
    for j, name in enumerate(classes):
        out[f"prob_{name}"] = proba[:, j]
    for j, name in enumerate(classes):
        out[f"error_{name}"] = errors[:, j]
    sig = kwargs.get("sigmas")
    info = {
        "method": "diffusion classifier (lowest class-conditional denoising error)",
        "temperature": float(temperature),
        "prior": "uniform" if prior is None else "class counts",
        "sigmas": [float(s) for s in (noise_levels() if sig is None else sig)],
        "trials": int(kwargs.get("trials", 2)),
        "nfe_per_object": int(k * len(noise_levels() if sig is None else sig))
        * int(kwargs.get("trials", 2)),
    }
    return out, info


# -- an experiment's objects (the workflow's diffusion classifier rules) ----------------------


def train_experiment(
    table: pd.DataFrame,
    labels: pd.DataFrame,
    images,
    norms,
    params: dict,
    checkpoint_path,
    seed: int = 0,
    threads: int | None = None,
    device=None,
):
    """Train on the labelled objects of an experiment, holding out whole samples (or a
    stratified share of objects with one sample) for the classify stage's metrics; the held-out
    keys are recorded in the checkpoint config."""
    lab = labelled(table, labels)
    if lab.empty:
        raise ValueError("the diffusion classifier needs labelled objects: none matched")
    classes = sorted(lab["class"].unique())
    train_mask, test_mask = holdout_split(
        lab["sample"].to_numpy(), lab["class"].to_numpy(), params.get("holdout", 0.25), seed
    )
    fit = lab[train_mask].reset_index(drop=True)
    size = int(params.get("crop", 32))
    pool = crop_pool(fit, size, params.get("pool", "auto"))
    crops = experiment_crops(fit, images, norms, size, pool)
    log.info("training on %d crops of %d classes; %d held out", len(fit), len(classes),
             int(test_mask.sum()))  # fmt: skip
    return train_classifier(
        crops,
        fit["class"].to_numpy(),
        classes,
        steps=int(params.get("steps", 2000)),
        batch=int(params.get("batch", 64)),
        lr=float(params.get("lr", 1e-3)),
        width=int(params.get("width", 32)),
        depth=int(params.get("depth", 3)),
        seed=seed,
        checkpoint_path=checkpoint_path,
        threads=threads,
        device=device,
        extra={**heldout_config(lab, test_mask), "pool": pool},
    )


def classify_experiment(
    table: pd.DataFrame,
    labels: pd.DataFrame | None,
    images,
    norms,
    checkpoint,
    params: dict,
    seed: int = 0,
    threads: int | None = None,
    device=None,
    max_calibration: int = 512,
) -> tuple[pd.DataFrame, dict]:
    """Classify every row of `table` with the checkpoint; `(classes, info)`.

    The temperature is fitted on (at most `max_calibration`) training objects; metrics are on
    the objects the training held out (`cv: holdout`). `params["prior"]`: `uniform` (the lowest
    error wins) or `train` (the most probable class under the training set's class counts).
    """
    from .tabular import KEYS, scores

    den, cfg = load_classifier(checkpoint, device=pick_device(device or "auto"))
    classes = list(cfg["classes"])
    size = int(cfg["crop_size"])
    kw = dict(
        sigmas=noise_levels(
            int(params.get("levels", 8)),
            float(params.get("sigma_min", 0.05)),
            float(params.get("sigma_max", 2.0)),
        ),
        trials=int(params.get("trials", 2)),
        seed=seed,
        batch=int(params.get("batch_eval", 256)),
        device=device,
        threads=threads,
    )
    held = {(str(s), int(i)) for s, i in cfg.get("heldout", [])}
    lab = labelled(table, labels) if labels is not None else table.iloc[:0].assign(**{"class": ""})
    is_test = np.array([(s, int(i)) in held for s, i in zip(lab["sample"], lab["id"])], bool)
    cal = lab[~is_test & lab["class"].isin(classes)]
    cal = cal.sample(min(len(cal), max_calibration), random_state=seed) if len(cal) else cal
    cal_y = np.array([classes.index(c) for c in cal["class"]], np.int64)
    pool = int(cfg.get("pool", 1))  # as the model was trained
    cal_crops = experiment_crops(cal.reset_index(drop=True), images, norms, size, pool)
    crops = experiment_crops(table.reset_index(drop=True), images, norms, size, pool)
    counts = None
    if params.get("prior", "uniform") == "train":  # Bayes' rule with the training class counts
        counts = [cfg.get("class_counts", {}).get(str(c), 0) for c in classes]
    out, info = classify_crops(
        den, crops, classes, calibration=(cal_crops, cal_y), class_counts=counts, **kw
    )
    keys = table[[k for k in KEYS if k in table.columns]].reset_index(drop=True)
    result = pd.concat([keys, out[["class"] + [f"prob_{c}" for c in classes]]], axis=1)
    test = lab[is_test].merge(result[["sample", "id", "class"]], on=["sample", "id"])
    metrics = scores(test["class_x"], test["class_y"], classes)
    info.update(
        mode="diffusion",
        cv="holdout",
        holdout=cfg.get("holdout"),
        n_test=int(len(test)),
        n_labelled=int(len(lab)),
        n_objects=int(len(table)),
        classes=classes,
        model_hash=cfg.get("params_hash"),
        **metrics,
    )
    return result, info
