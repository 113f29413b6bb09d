"""The restore stage's noise fit over the experiment and the config a restore model records;
torch-free, so that a restore model made without training (the shipped default as it is,
`pretrained`) needs no torch (issue 15)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import zarr

from .. import normalize, provenance
from ..normalize import Normalizer
from ..tiling import read_box, sample_patch_boxes
from .noise_model import NoiseModel, fit_noise_model

WHOLE_BYTES = 64 << 20  # a stored image up to this size is read whole by `sample_planes`


def sample_planes(arrays: Sequence, n: int, patch: int, rng: np.random.Generator):
    """`n` random 2D patches per array: (array index, (C, Y, X) float32) pairs (3D: a z plane)."""
    out = []
    for k, arr in enumerate(arrays):
        sp = arr.shape[1:]
        if isinstance(arr, zarr.Array) and arr.nbytes <= WHOLE_BYTES:
            # a small stored image read once, not once per patch (each read decodes the chunks
            # it touches again); the same values
            arr = np.asarray(arr[...])
        size = (1, patch, patch) if len(sp) == 3 else (patch, patch)
        for box in sample_patch_boxes(sp, size, n, rng):
            block = read_box(arr, box).astype(np.float32)
            out.append((k, block.reshape(block.shape[0], *block.shape[-2:])))
    return out


def fit_experiment_noise(
    arrays: Sequence, patches: int = 16, patch: int = 128, seed: int = 0, total: int = 256
):
    """One Poisson-Gaussian model per channel, pooled over the experiment's images: `patches`
    per image, fewer when there are more than `total / patches` images (at least one each), so
    the fit costs the same for a plate of hundreds of fields as for sixteen (256 patches of 128^2
    are 4 M pixels per channel, far more than two parameters and a curve need)."""
    rng = np.random.default_rng([seed, 11])
    per_image = max(1, min(patches, -(-total // max(len(arrays), 1))))
    planes = [p for _, p in sample_planes(arrays, per_image, patch, rng)]
    return fit_noise_model(planes, arrays[0].shape[0])


def experiment_noise(stores: Sequence, norm_paths: Sequence, training: dict):
    """(normalizers, level-0 arrays, noise model) of the experiment's images: the arrays
    flat-field corrected when their statistics were, the model `fit_experiment_noise`'s."""
    norms = [Normalizer.from_json(p) for p in norm_paths]
    arrays = [normalize.level0(s, norms[i] if norms else None) for i, s in enumerate(stores)]
    noise = fit_experiment_noise(arrays, seed=int(training.get("seed", 0)))
    return norms, arrays, noise


def restore_config(
    stores: Sequence, noise: NoiseModel, params: dict, mode: str, how: str, level: dict, losses
) -> dict:
    """The entries a restore model's config records beside the checkpoint's own."""
    return {
        "task": "restore",
        "level": level,
        "noise": noise.to_json(),
        "mode": mode,
        "init": how,
        "params": params,
        "data_hash": provenance.stable_hash([str(s) for s in stores]),
        "norm": "none: GroupNorm statistics removed, affine kept (a local network)",
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "method": "GSURE-trained diffusion denoiser (heteroscedastic SURE with the noise model's "
        "variance map), posterior mean by Tweedie at the noise level (times level.scale)",
    }
