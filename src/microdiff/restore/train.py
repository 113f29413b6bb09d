"""Restore training: fit the experiment's noise model and make its restore model.

    train_restore(raw stores, norm files, params, model dir) -> models/restore/

Self-supervised (SURE on the experiment's own noisy images), supervised (noisy/clean pairs
named in a sheet), or the shipped default as is; see the package docstring for the method.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..diffusion import Denoiser, augment, build, save_checkpoint, set_threads
from ..tiling import sample_patch_boxes
from .denoise import to_v, train_denoiser, variance_map, vst_range
from .level import recorded_level
from .noise_fit import experiment_noise, restore_config
from .noise_model import NoiseModel, fit_noise_model
from .stage import DEFAULT_MODEL, load_model

log = logging.getLogger("microdiff.restore")


def self_source(arrays, norms, noise: NoiseModel, patch: int):
    """Training patches (y in v, sigma, None, noise variance map) from the raw images."""
    ranges = [vst_range(noise, n.low, n.high) for n in norms]
    sizes = np.array([float(np.prod(a.shape[1:])) for a in arrays])
    p = sizes / sizes.sum()

    def sample(n, rng):
        ys, ws, sig = [], [], []
        for _ in range(n):
            k = int(rng.choice(len(arrays), p=p))
            sp = arrays[k].shape[1:]
            size = (1, patch, patch) if len(sp) == 3 else (patch, patch)
            box = sample_patch_boxes(sp, size, 1, rng)[0]
            c = int(rng.integers(arrays[k].shape[0]))
            raw = np.asarray(arrays[k][(slice(c, c + 1), *box.slices)], np.float32)
            raw = noise.dequantize(raw[0], c, [sl.start for sl in box.slices])  # integer data
            raw = raw.reshape(1, *raw.shape[-2:])
            f_lo, f_hi, s = ranges[k]
            y = _fit((noise.forward(raw[0], c) - f_lo[c]) / (f_hi[c] - f_lo[c]), patch)
            both = augment(np.stack([y, variance_map(y, noise, c, f_lo[c], f_hi[c])]), rng)
            ys.append(both[:1])
            ws.append(both[1:])
            sig.append(s[c])
        return torch_batch(ys), _t(sig), None, torch_batch(ws)

    return sample


def _fit(img: np.ndarray, patch: int) -> np.ndarray:
    """Reflect-pad a 2D patch up to patch x patch (images smaller than the patch)."""
    py, px = max(0, patch - img.shape[0]), max(0, patch - img.shape[1])
    return np.pad(img, ((0, py), (0, px)), mode="reflect") if py or px else img


def torch_batch(items):
    return torch.from_numpy(np.stack(items).astype(np.float32))


def _t(values):
    return torch.tensor(np.asarray(values, np.float32))


def read_sheet_pairs(sheet, columns: tuple[str, str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Image pairs from a TSV naming them in `columns` (paths relative to the TSV), each image
    (C, [Z,] Y, X) float32: noisy/clean pairs for restore, low/high for super-resolution."""
    from ..io.readers import open_image

    sheet = Path(sheet)
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    if not set(columns) <= set(table.columns):
        raise ValueError(f"{sheet}: needs columns {' and '.join(columns)}")
    pairs = []
    for row in table.itertuples(index=False):
        imgs = []
        for p in (getattr(row, columns[0]), getattr(row, columns[1])):
            src = open_image(sheet.parent / p)
            a = np.asarray(src.read(), np.float32)
            imgs.append(a if "c" in src.axes else a[None])
        pairs.append((imgs[0], imgs[1]))
    return pairs


def pair_source(pairs, patch: int):
    """Supervised training patches: noisy (v), sigma, clean (v, affinely matched to noisy)."""
    prepared = []
    planes = [n.reshape(n.shape[0], -1, *n.shape[-2:])[:, 0] for n, _ in pairs]
    noise = fit_noise_model(planes, pairs[0][0].shape[0])
    for noisy, clean in pairs:
        low = np.percentile(noisy, 1, axis=tuple(range(1, noisy.ndim)))
        high = np.percentile(noisy, 99.8, axis=tuple(range(1, noisy.ndim)))
        f_lo, f_hi, s = vst_range(noise, low, high)
        matched = np.empty_like(clean)
        for c in range(clean.shape[0]):  # clean on the noisy image's scale (least squares)
            A = np.stack([clean[c].ravel(), np.ones(clean[c].size)], 1)
            coef = np.linalg.lstsq(A, noisy[c].ravel(), rcond=None)[0]
            matched[c] = np.maximum(clean[c] * coef[0] + coef[1], 0)
        y = to_v(noisy, noise, f_lo, f_hi, (0,) * (noisy.ndim - 1))  # dithered if integer
        prepared.append((y, to_v(matched, noise, f_lo, f_hi), s))

    def sample(n, rng):
        ys, xs, sig = [], [], []
        for _ in range(n):
            y, x, s = prepared[int(rng.integers(len(prepared)))]
            c = int(rng.integers(y.shape[0]))
            y2, x2 = y[c].reshape(-1, *y.shape[-2:]), x[c].reshape(-1, *x.shape[-2:])
            z = int(rng.integers(y2.shape[0]))
            box = sample_patch_boxes(y2.shape[-2:], patch, 1, rng)[0]
            both = np.stack([_fit(y2[z][box.slices], patch), _fit(x2[z][box.slices], patch)])
            both = augment(both, rng)
            ys.append(both[:1])
            xs.append(both[1:])
            sig.append(s[c])
        return torch_batch(ys), _t(sig), torch_batch(xs)

    return sample, noise


def initial_model(training: dict, default=DEFAULT_MODEL) -> tuple[Denoiser, str]:
    """The shipped default when asked for and its architecture matches, else a fresh network."""
    with torch.random.fork_rng(devices=[]):  # seeded init: the same config gives the same model
        torch.manual_seed(int(training.get("seed", 0)))
        fresh = build(1, width=int(training["width"]), depth=int(training["depth"]), local=True)
    if training.get("init", "default") == "default" and (Path(default) / "config.json").is_file():
        den, cfg = load_model(default)
        if den.net.config == fresh.net.config:
            return den, f"fine-tuned from the shipped default ({cfg['params_hash']})"
        log.info("shipped default has another architecture: training from scratch")
    return fresh, "trained from scratch"


def train_restore(
    stores: Sequence,
    norm_paths: Sequence,
    params: dict,
    out,
    threads: int | None = None,
    device=None,
    progress: bool = True,
    default=DEFAULT_MODEL,
) -> dict:
    """Fit the noise model and make the restore model (engine checkpoint dir `out`).

    params: {"train": bool, "pairs": TSV or None, "training": {...}} (config `restore`). With
    train false the shipped default weights are used as they are (the noise model is still
    fitted to this experiment); with pairs, training is supervised.
    """
    set_threads(threads)
    training = params["training"]
    norms, arrays, noise = experiment_noise(stores, norm_paths, training)
    log.info("noise model (Var = a E + b per channel): %s", noise.to_json())
    losses: list[float] = []
    if not params.get("train", True):
        den, cfg0 = load_model(default)
        how, mode = f"shipped default as is ({cfg0['params_hash']})", "pretrained"
        level = recorded_level(self_supervised=False)
    else:
        den, how = initial_model(training, default)
        if params.get("pairs"):
            source, _ = pair_source(
                read_sheet_pairs(params["pairs"], ("noisy", "clean")), int(training["patch"])
            )
            mode = "supervised (noisy/clean pairs)"
        else:
            source = self_source(arrays, norms, noise, int(training["patch"]))
            mode = "self-supervised (SURE on the experiment's noisy images)"
        log.info("training the restore model: %s, %s", mode, how)
        level = recorded_level(not params.get("pairs"), fine_tuned=how.startswith("fine-tuned"))
        den, losses = train_denoiser(
            den,
            source,
            int(training["steps"]),
            batch=int(training["batch"]),
            lr=float(training["lr"]),
            seed=int(training.get("seed", 0)),
            p_exact=float(training.get("p_exact", 0.0)),
            threads=threads,
            device=device,
            progress=progress,
        )
    cfg = restore_config(stores, noise, params, mode, how, level, losses)
    return save_checkpoint(out, den, cfg)
