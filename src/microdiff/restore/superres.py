"""Super-resolution (x2, x4) by a conditional diffusion model: degradation, training, sampling.

Degradation model. A high-resolution (HR) plane x gives the low-resolution (LR) plane
y = bin_f(g_s * x): a Gaussian PSF of standard deviation s (HR pixels) followed by integer
binning by f (the mean of each f x f block, as a camera with f-times larger pixels).

Training pairs. Either the data makes its own (`SelfPairs`: HR patches of the experiment's own
normalized images, degraded on the fly by the model above; the image itself is the target, as
in zero-shot SR, Shocher, Cohen & Irani 2018, which assumes its structures look alike at the
two scales), or LR/HR pairs named in the config (`PairPatches`: aligned patches of two images
whose grids differ by f).

Model. The engine's network, local (GroupNorm statistics dropped, `diffusion.unet`), is an
EDM denoiser of the residual r = (x - up(y)) * gain conditioned on up(y), the bicubic (or
nearest) upsampling of the LR plane onto the HR grid (SR3, Saharia et al. 2022, with the
residual target of SRDiff, Li et al. 2022); `gain` scales the residual to standard deviation
sigma_data (measured on the training pairs). Single-channel: every channel and every z plane of
a 3D image is a plane of its own, so 3D images are super-resolved slice-wise in y and x.

Training is the engine's EDM denoising score matching, with noise levels drawn higher than for
image generation (`P_MEAN`, `P_STD`).

Sampling. DPM-Solver++(2M) or DDIM over a Karras schedule (sigma_min 0.01), a few steps; K
samples give the posterior mean (output) and per-pixel posterior standard deviation. All noise
is keyed by the global position on the fine grid (and channel, z plane and sample index;
`diffusion.posterior`), and each tile is padded so its first pixel sits on a global multiple of the
UNet's stride, so the output does not depend on where the tile grid falls (seam-free).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from ..diffusion import Denoiser, accel, augment, build, nfe, pick_device
from ..diffusion.posterior import PlaneNoise, Posterior, mean_std
from ..provenance import stable_hash
from ..tiling import read_box, sample_patch_boxes

log = logging.getLogger("microdiff.restore")

FACTORS = (2, 4)
SIGMA_MIN, SIGMA_MAX = 0.01, 20.0
# Training noise levels ln(sigma) ~ N(P_MEAN, P_STD^2): higher than EDM's image-generation
# default (-1.2, 1.2), since SR quality at few steps rests on the high levels, where the network
# must predict the residual from the condition alone (measured: +3 dB at 300 steps).
P_MEAN, P_STD = 0.6, 1.5
SAMPLERS = ("dpmpp_2m", "ddim")


def check_factor(factor: int) -> int:
    if int(factor) not in FACTORS:
        raise ValueError(f"super-resolution factor must be one of {FACTORS}, not {factor}")
    return int(factor)


def blur(hr: np.ndarray, psf_sigma: float) -> np.ndarray:
    """Gaussian PSF over the last two axes (reflect at the borders)."""
    if psf_sigma <= 0:
        return hr.astype(np.float32)
    sig = (0,) * (hr.ndim - 2) + (psf_sigma, psf_sigma)
    return gaussian_filter(hr.astype(np.float32), sig, mode="reflect")


def bin_mean(hr: np.ndarray, factor: int) -> np.ndarray:
    """Mean over f x f blocks of the last two axes (cropped to a multiple of f)."""
    *lead, h, w = hr.shape
    h, w = h - h % factor, w - w % factor
    blocks = hr[..., :h, :w].reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1), dtype=np.float32)


def degrade(hr: np.ndarray, factor: int, psf_sigma: float) -> np.ndarray:
    """The degradation model: PSF blur then binning by `factor` (last two axes)."""
    return bin_mean(blur(hr, psf_sigma), factor)


def upsample(lr: torch.Tensor, factor: int, mode: str = "bicubic") -> torch.Tensor:
    """(N, 1, y, x) -> (N, 1, f y, f x); pixel centres as binning puts them."""
    if mode == "nearest":
        return F.interpolate(lr, scale_factor=factor, mode="nearest")
    return F.interpolate(lr, scale_factor=factor, mode="bicubic", align_corners=False)


def network(training: dict) -> Denoiser:
    """A fresh local conditional UNet denoiser (1 image + 1 condition channel)."""
    torch.manual_seed(int(training.get("seed", 0)))
    return build(1, 1, int(training["width"]), int(training["depth"]), local=True)


@torch.no_grad()
def explained(den: Denoiser, source, n: int = 32, seed: int = 54321) -> float:
    """Share of the residual's energy the model predicts on `n` fresh pairs of `source`:
    1 - MSE(one-step posterior mean - residual) / MSE(residual), i.e. the gain over bicubic
    (0 = no better than bicubic, 1 = perfect). A model whose training diverged (its output stuck
    at zero: seen at lr 3e-3 without GroupNorm) scores ~0 here."""
    r, up = source.sample(n, np.random.default_rng(seed))
    dev = next(den.parameters()).device
    x = torch.randn(r.shape, generator=torch.Generator().manual_seed(seed)) * SIGMA_MAX
    d = den.eval()(x.to(dev), SIGMA_MAX, up.to(dev)).float().cpu()
    return float(1.0 - ((d - r) ** 2).mean() / (r**2).mean().clamp_min(1e-12))


def _plane(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random z plane of a (1, [Z,] Y, X) read as (Y, X)."""
    block = block.reshape(-1, *block.shape[-2:])
    return block[int(rng.integers(block.shape[0]))]


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad (or crop) a 2D plane to size x size."""
    py, px = max(0, size - img.shape[0]), max(0, size - img.shape[1])
    if py or px:
        img = np.pad(img, ((0, py), (0, px)), mode="reflect" if min(img.shape) > 1 else "edge")
    return img[:size, :size]


class _Pairs:
    """Shared by the pair sources: (HR, LR) planes -> engine batch (residual * gain, up(LR))."""

    factor: int
    cond: str
    gain: float = 1.0

    def _pair(self, rng) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def pairs(self, n: int, rng: np.random.Generator):
        hr, lr = zip(*(self._pair(rng) for _ in range(n)))
        hr = torch.from_numpy(np.stack(hr)[:, None].astype(np.float32))
        lr = torch.from_numpy(np.stack(lr)[:, None].astype(np.float32))
        return hr, lr

    def sample(self, n: int, rng: np.random.Generator):
        hr, lr = self.pairs(n, rng)
        up = upsample(lr, self.factor, self.cond)
        return (hr - up) * self.gain, up

    def calibrate(self, sigma_data: float, n: int = 64, seed: int = 12345) -> float:
        """Set `gain` so the residual's standard deviation is `sigma_data`; returns it."""
        self.gain = 1.0
        x0, _ = self.sample(n, np.random.default_rng(seed))
        self.gain = float(sigma_data / max(float(x0.std()), 1e-4))
        return self.gain


class SelfPairs(_Pairs):
    """HR patches of the experiment's own images, degraded on the fly.

    arrays: (C, [Z,] Y, X) level-0 arrays; norms: one `Normalizer` per array (to ~[0, 1]).
    """

    def __init__(self, arrays, norms, factor, psf_sigma, patch, cond="bicubic"):
        self.arrays, self.norms = list(arrays), list(norms)
        self.factor, self.psf_sigma, self.cond = check_factor(factor), float(psf_sigma), cond
        self.patch = int(patch) - int(patch) % self.factor
        self.margin = int(np.ceil(3 * self.psf_sigma))
        sizes = np.array([float(np.prod(a.shape[1:])) for a in self.arrays])
        self.p = sizes / sizes.sum()
        shapes = [list(a.shape) for a in self.arrays]
        self.data_hash = stable_hash({"shapes": shapes, "patch": self.patch, "kind": "self"})

    def _pair(self, rng):
        k = int(rng.choice(len(self.arrays), p=self.p))
        arr = self.arrays[k]
        sp = arr.shape[1:]
        size = self.patch + 2 * self.margin
        box = sample_patch_boxes(sp, (1, size, size) if len(sp) == 3 else size, 1, rng)[0]
        c = int(rng.integers(arr.shape[0]))
        block = read_box(arr, box)[c : c + 1].astype(np.float32)
        lo, hi = float(self.norms[k].low[c]), float(self.norms[k].high[c])
        hr = _fit(_plane((block - lo) / max(hi - lo, 1e-6), rng), size)
        hr = augment(hr, rng)
        blurred = blur(hr, self.psf_sigma)
        m, p = self.margin, self.patch
        return hr[m : m + p, m : m + p], bin_mean(blurred[m : m + p, m : m + p], self.factor)


class PairPatches(_Pairs):
    """Aligned patches of LR/HR image pairs (each (C, [Z,] Y, X), HR finer by `factor` in y, x),
    each image normalized by its own 1 / 99.8 percentiles per channel."""

    def __init__(self, pairs, factor, patch, cond="bicubic"):
        self.factor, self.cond = check_factor(factor), cond
        self.patch = int(patch) - int(patch) % self.factor
        self.pairs_ = []
        for lr, hr in pairs:
            if hr.shape[-2:] != (lr.shape[-2] * self.factor, lr.shape[-1] * self.factor):
                raise ValueError(
                    f"an HR image of shape {hr.shape} is not {self.factor} times its LR "
                    f"image of shape {lr.shape} in y and x"
                )
            self.pairs_.append((_percentile_norm(lr), _percentile_norm(hr)))
        shapes = [[list(a.shape), list(b.shape)] for a, b in self.pairs_]
        self.data_hash = stable_hash({"shapes": shapes, "patch": self.patch, "kind": "pairs"})

    def _pair(self, rng):
        lr, hr = self.pairs_[int(rng.integers(len(self.pairs_)))]
        c = int(rng.integers(lr.shape[0]))
        lr2, hr2 = lr[c].reshape(-1, *lr.shape[-2:]), hr[c].reshape(-1, *hr.shape[-2:])
        z = int(rng.integers(lr2.shape[0]))
        q = self.patch // self.factor
        box = sample_patch_boxes(lr2.shape[-2:], q, 1, rng)[0]
        f = self.factor
        lo = _fit(lr2[z][box.slices], q)
        hi = _fit(hr2[z][tuple(slice(s.start * f, s.stop * f) for s in box.slices)], self.patch)
        flips = rng.integers(2, size=2)
        for ax, flip in zip((0, 1), flips):
            if flip:
                lo, hi = np.flip(lo, ax), np.flip(hi, ax)
        return np.ascontiguousarray(hi), np.ascontiguousarray(lo)


def _percentile_norm(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float32)
    axes = tuple(range(1, img.ndim))
    lo = np.percentile(img, 1, axis=axes, keepdims=True)
    hi = np.percentile(img, 99.8, axis=axes, keepdims=True)
    return (img - lo) / np.maximum(hi - lo, 1e-6)


def _align(x: torch.Tensor, origins, m: int):
    """Pad each plane so its first pixel sits at a global multiple of `m`; (padded, starts)."""
    rows, starts = [], []
    for img, (oy, ox) in zip(x, origins):
        by, bx = oy % m, ox % m
        mode = "reflect" if min(img.shape[-2:]) > m else "replicate"
        rows.append(F.pad(img[None], (bx, m - bx, by, m - by), mode=mode)[0])
        starts.append((by, bx))
    return torch.stack(rows), starts


def posterior(inference: dict) -> Posterior:
    """The K-sample posterior `inference` asks for (config `restore.superres.inference`)."""
    return Posterior(
        SIGMA_MIN,
        SIGMA_MAX,
        steps=int(inference.get("steps", 4)),
        sampler=inference.get("sampler", "dpmpp_2m"),
        samples=int(inference.get("samples", 1)),
        seed=int(inference.get("seed", 0)),
    )


def sr_nfe(inference: dict) -> int:
    """Network evaluations per output pixel: samples x the sampler's evaluations."""
    steps = int(inference.get("steps", 4))
    return int(inference.get("samples", 1)) * nfe(inference.get("sampler", "dpmpp_2m"), steps)


@torch.no_grad()
def superres_planes(
    den: Denoiser,
    lr: np.ndarray,
    keys: Sequence[tuple[int, int, int]],
    factor: int,
    gain: float,
    inference: dict,
    cond: str = "bicubic",
    device=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Super-resolve normalized LR planes (N, Y, X); keys: (plane key, y0, x0) per plane, the
    global LR position of its first pixel (the key separates channels and z planes).

    Returns (posterior mean (N, fY, fX), posterior std or None) in the normalized domain.
    """
    dev = pick_device(device or "auto")
    den = accel.prepare(den, dev)
    post = posterior(inference)
    batch = int(inference.get("batch", 16))
    m = getattr(den.net, "multiple", 1)
    n, h, w = lr.shape
    mean = np.empty((n, h * factor, w * factor), np.float32)
    std = np.empty_like(mean) if post.samples > 1 else None
    for i in range(0, n, batch):
        chunk = torch.from_numpy(np.ascontiguousarray(lr[i : i + batch], np.float32))[:, None]
        up = accel.to_device(upsample(chunk, factor, cond), dev)
        fine = [(y * factor, x * factor) for _, y, x in keys[i : i + batch]]
        up_p, starts = _align(up, fine, m)
        noise_keys = [
            (key[0], fy - by, fx - bx)
            for key, (fy, fx), (by, bx) in zip(keys[i : i + batch], fine, starts)
        ]
        finish = partial(_crop, starts=starts, size=(h * factor, w * factor), gain=gain)
        noise = partial(PlaneNoise, origins=noise_keys)
        draws = post.draw(den, up_p.shape, noise, finish, cond=up_p, device=dev)
        mu, sd = mean_std(np.stack(draws), 0, ddof=1)
        mean[i : i + batch] = up[:, 0].cpu().numpy() + mu
        if std is not None:
            std[i : i + batch] = sd
    return mean, std


def _crop(r: torch.Tensor, starts, size, gain: float) -> np.ndarray:
    """Aligned samples (N, 1, ...) back to their planes' own extent, off the device, / gain."""
    r = torch.stack(
        [img[:, by : by + size[0], bx : bx + size[1]] for img, (by, bx) in zip(r, starts)]
    )
    return r[:, 0].float().cpu().numpy() / gain
