"""One diffusion engine for every stage: networks, schedules, samplers, training, checkpoints.

Denoiser interface D(x, sigma, cond) -> x0 (EDM preconditioning around a UNet; Karras et al.
2022), schedules as decreasing sigma arrays ending at 0, samplers as pure functions of
(denoiser, x, sigmas, cond, generator, callback): DDPM ancestral (Ho et al. 2020), DDIM (Song,
Meng & Ermon 2021), reverse SDE Euler-Maruyama and predictor-corrector (Song et al. 2021),
Heun (Karras et al. 2022), DPM-Solver++(2M) (Lu et al. 2022); SDEdit starts (Meng et al. 2022);
DPS guidance for linear inverse problems (Chung et al. 2023); progressive distillation to
few-step students (Salimans & Ho 2022).

One network factory: every stage builds its denoiser with `network.build` (EDM preconditioning
around a `UNet`; `local=True` drops the norms' statistics so tiled inference equals whole-image
inference); a checkpoint records those options and `load_checkpoint` rebuilds the same network
(`local=` covers configs written before the option was recorded). One training loop:
`train.train` (AdamW, clipping, EMA, warm-up/cosine decay, checkpoints, exact resume, seeded
per-step generators) takes the loss as an argument: EDM denoising score matching by default,
restore's SURE / supervised loss and progressive distillation's target are losses passed in. One
augmentation of training patches: `augment`.
"""

from .analytic import GaussianDenoiser, GaussianMixtureDenoiser
from .augment import augment
from .checkpoint import (
    load_checkpoint,
    load_shared,
    load_train_state,
    params_hash,
    read_config,
    save_checkpoint,
)
from .device import pick_device, set_threads
from .distill import DistillResult, distill, halve
from .guidance import DPS, Blur, Compose, Downsample, LinearOperator, Mask
from .network import build
from .noise import PositionalNoise, draw_noise, initial_noise
from .precond import Denoiser
from .samplers import SAMPLERS, ddim_invert, nfe, sample
from .schedules import (
    alpha_bar_from_sigma,
    ddpm_alphas_bar,
    ddpm_betas,
    ddpm_sigmas,
    ddpm_timesteps,
    get_sigmas,
    karras_sigmas,
    sigma_from_alpha_bar,
    sigmas_from,
    ve_sigmas,
)
from .train import EDMLoss, TrainResult, edm_loss, train
from .unet import UNet

__all__ = [
    "DPS",
    "SAMPLERS",
    "Blur",
    "Compose",
    "Denoiser",
    "DistillResult",
    "EDMLoss",
    "Downsample",
    "GaussianDenoiser",
    "GaussianMixtureDenoiser",
    "LinearOperator",
    "Mask",
    "PositionalNoise",
    "TrainResult",
    "UNet",
    "alpha_bar_from_sigma",
    "augment",
    "build",
    "ddim_invert",
    "ddpm_alphas_bar",
    "ddpm_betas",
    "ddpm_sigmas",
    "ddpm_timesteps",
    "distill",
    "draw_noise",
    "edm_loss",
    "get_sigmas",
    "halve",
    "initial_noise",
    "karras_sigmas",
    "load_checkpoint",
    "load_shared",
    "load_train_state",
    "nfe",
    "params_hash",
    "pick_device",
    "read_config",
    "sample",
    "save_checkpoint",
    "set_threads",
    "sigma_from_alpha_bar",
    "sigmas_from",
    "train",
    "ve_sigmas",
]
