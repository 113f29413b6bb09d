"""The restore denoiser: training (GSURE self-supervised or supervised) and tile inference.

Domains. Raw pixels r of channel c go through the channel's GAT f (noise ~N(0, 1)) and then an
affine map to v = (f(r) - f(low)) / (f(high) - f(low)), where low/high are the sample's
normalization percentiles; in v the noise is Gaussian with standard deviation
sigma_c = 1 / (f(high) - f(low)). The network is single-channel: every channel (and every z
slice of a 3D image) is a separate image with its own sigma_c, so one model serves any number
of channels and noise levels.

Training draws an extra noise level s (s = 0 with probability `p_exact`, else log-normal as in
EDM), z = y + s eps, t = sqrt(sigma_c^2 + s^2), and minimizes lambda(t) times
- self-supervised: SURE(D(., t); z) = |D(z) - z|^2 / N - t^2 + 2 t^2 div D(z) / N, the
  divergence by one Monte-Carlo probe (Ramani et al. 2008); its expectation is the MSE to the
  unknown clean image, so no clean image is needed (Stein 1981; GSURE diffusion: Kawar et al.
  2023);
- supervised (noisy/clean pairs): |D(z) - x|^2.

Always fresh noise (p_exact 0, the default). With s = 0 the network sees the very noisy pixels
it is scored on, again and again; SURE's divergence measures only how the output moves with the
input, not what the weights have learned of that one noise draw, so a network trained long
enough memorizes the noise and SURE stops tracking the error. Measured on FMD (3 images, same
UNet, bench/restore.py's protocol): p_exact 0.8 fell to 23.4 dB after 1200 steps (below the noisy
input's 24.7); with p_exact 0 every training input carries a new draw of extra noise (t > sigma,
t -> sigma as s -> 0, so Tweedie at the data's own level stays inside the trained range) and
PSNR rose and stayed: 29.6, 30.1, 30.2, 30.2, 30.2 dB at 150, 300, 450, 600, 750 steps.

Heteroscedastic SURE. The GAT leaves the noise variance below 1 at low photon counts, so the
noise of y is N(0, diag(w)) with w_i = sigma_c^2 Var_f(f_i) from the noise model's residual
variance curve (`NoiseModel.gat_variance`), evaluated at the local mean of the 5x5 neighbours
(the centre pixel left out, so w_i does not depend on y_i's own noise). SURE with a known
diagonal covariance W = w + s^2 is |D(z) - z|^2 / N - mean(W) + 2 sum_i W_i dD_i/dz_i / N (Stein
1981), the weighted divergence again by one probe: mean(W * p * (D(z + delta p) - D(z))) /
delta. With w = sigma^2 this is the homoscedastic SURE above.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..diffusion import Denoiser, PositionalNoise, accel, pick_device, train
from .noise_model import NoiseModel

log = logging.getLogger("microdiff.restore")

# sample(n, rng) -> (y (n,1,Y,X), sigma (n,), x (n,1,Y,X) or None[, var (n,1,Y,X) or None]),
# all float32 tensors; var is y's per-pixel noise variance (heteroscedastic SURE)
Source = Callable[[int, np.random.Generator], tuple]


def vst_range(noise: NoiseModel, low: Sequence[float], high: Sequence[float]):
    """Per channel (f(low), f(high)) and the noise sigma in the normalized domain v."""
    f_lo = np.array([float(noise.forward(np.float32(lo), c)) for c, lo in enumerate(low)])
    f_hi = np.array([float(noise.forward(np.float32(hi), c)) for c, hi in enumerate(high)])
    f_hi = np.where(f_hi - f_lo < 1e-6, f_lo + 1.0, f_hi)
    return f_lo, f_hi, 1.0 / (f_hi - f_lo)


def to_v(block: np.ndarray, noise: NoiseModel, f_lo, f_hi, origin=None) -> np.ndarray:
    """Raw (C, ...) -> normalized VST domain (C, ...). With `origin` (global coordinates of the
    block's first pixel, one per spatial axis) quantized channels are dithered first
    (`NoiseModel.dequantize`)."""
    out = np.empty(block.shape, np.float32)
    for c in range(block.shape[0]):
        r = block[c] if origin is None else noise.dequantize(block[c], c, origin)
        out[c] = (noise.forward(r, c) - f_lo[c]) / (f_hi[c] - f_lo[c])
    return out


def from_v(v: np.ndarray, noise: NoiseModel, f_lo, f_hi) -> np.ndarray:
    out = np.empty(v.shape, np.float32)
    for c in range(v.shape[0]):
        out[c] = noise.inverse(v[c] * (f_hi[c] - f_lo[c]) + f_lo[c], c)
    return out


def std_from_v(v: np.ndarray, std_v: np.ndarray, noise: NoiseModel, f_lo, f_hi) -> np.ndarray:
    """A standard deviation in v mapped to raw units at v (delta method)."""
    out = np.empty(v.shape, np.float32)
    for c in range(v.shape[0]):
        scale = f_hi[c] - f_lo[c]
        out[c] = std_v[c] * scale * noise.inverse_slope(v[c] * scale + f_lo[c], c)
    return out


def variance_map(v: np.ndarray, noise: NoiseModel, c: int, f_lo: float, f_hi: float):
    """Per-pixel noise variance of a 2D v-domain image of channel c (heteroscedastic SURE)."""
    k = np.ones((5, 5), np.float32)
    k[2, 2] = 0.0
    local = ndimage.convolve(np.asarray(v, np.float32), k / k.sum(), mode="reflect")
    scale = f_hi - f_lo
    return (noise.gat_variance(local * scale + f_lo, c) / scale**2).astype(np.float32)


def sure_loss(
    den: Denoiser, y, sigma, x, gen, p_exact=0.5, p_mean=-1.2, p_std=1.2, delta=1e-3, var=None
):
    """One batch's loss (see the module docstring); `x` None means self-supervised; `var`
    (like y) is the per-pixel noise variance of y (None: sigma^2 everywhere)."""
    b = y.shape[0]
    s = (torch.randn(b, generator=gen) * p_std + p_mean).exp()
    s = torch.where(torch.rand(b, generator=gen) < p_exact, torch.zeros_like(s), s)
    eps = torch.randn(y.shape, generator=gen)
    probe = torch.randn(y.shape, generator=gen)
    s, eps, probe = s.to(y.device), eps.to(y.device), probe.to(y.device)
    t = (sigma**2 + s**2).sqrt()
    tv = t.view(-1, 1, 1, 1)
    z = y + s.view(-1, 1, 1, 1) * eps
    sd = den.sigma_data
    weight = (t**2 + sd**2) / (t * sd) ** 2
    d = den(z, t)
    if x is not None:
        per = ((d - x) ** 2).mean(dim=(1, 2, 3))
    else:
        d2 = den(z + delta * probe, t)
        w = tv**2 if var is None else var.to(y.device) + s.view(-1, 1, 1, 1) ** 2
        w = w.expand_as(y)
        div = (w * probe * (d2 - d)).mean(dim=(1, 2, 3)) / delta
        per = ((d - z) ** 2).mean(dim=(1, 2, 3)) - w.mean(dim=(1, 2, 3)) + 2 * div
    return (weight * per).mean()


@dataclass(frozen=True)
class RestoreLoss:
    """`sure_loss` as the engine's training loss, on the batches of a restore `Source`:
    (y, sigma, x or None[, var or None]). The supervised loss (x given) runs under bf16 autocast
    on CUDA; SURE stays float32 (its divergence is a finite difference over a 1e-3 probe, below
    bf16's rounding)."""

    p_exact: float = 0.0

    @property
    def config(self) -> dict:
        return {"p_exact": self.p_exact}

    def __call__(self, model, batch, generator) -> torch.Tensor:
        y, sigma, x, *var = batch
        var = var[0] if var else None
        with accel.autocast(y.device, bf16=x is not None):
            return sure_loss(model, y, sigma, x, generator, p_exact=self.p_exact, var=var)


def train_denoiser(
    den: Denoiser,
    source: Source,
    steps: int,
    batch: int = 8,
    lr: float = 5e-4,
    seed: int = 0,
    ema: float = 0.998,
    p_exact: float = 0.0,
    threads: int | None = None,
    device=None,
    progress: bool = True,
    log_every: int = 50,
    callback: Callable[[int, Denoiser], None] | None = None,
    checkpoint_path=None,
    checkpoint_every: int = 0,
    resume: bool = False,
    config: dict | None = None,
) -> tuple[Denoiser, list[float]]:
    """Train `den` in place on `source` for `steps` AdamW steps; returns (EMA model, losses).

    The engine's loop (`diffusion.train`) with `RestoreLoss`, a 50-step warm-up and a cosine
    decay of the learning rate to 10%: step k draws everything from generators seeded by (seed,
    k), so the same call gives the same weights on CPU, and with `checkpoint_path` a killed run
    resumes exactly (`resume`). `callback(k, ema_model)`, if given, runs after every
    `log_every` steps (diagnostics, e.g. the true error on images with a clean target).
    """
    result = train(
        den,
        source,
        steps,
        batch=batch,
        lr=lr,
        ema=ema,
        seed=seed,
        loss=RestoreLoss(p_exact),
        weight_decay=0.01,
        warmup=50,
        decay_to=0.1,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        resume=resume,
        config=config,
        log_every=log_every,
        progress=progress,
        device=device,
        threads=threads,
        callback=callback,
        desc="train restore",
    )
    return result.denoiser.cpu(), result.losses


def _align_pad(x: torch.Tensor, origins: Sequence[Sequence[int]], m: int):
    """Pad each (1-channel) image so its first pixel sits at a global multiple of `m` in y and
    x: strided layers then see the same pixel grid whatever the tiling. Returns (padded, crops)."""
    if m <= 1:
        return x, [(0, 0)] * x.shape[0]
    rows, crops = [], []
    for img, (oy, ox) in zip(x, origins):
        by, bx = oy % m, ox % m
        pads = (bx, m - bx, by, m - by)
        mode = "reflect" if min(img.shape[-2:]) > m else "replicate"
        rows.append(F.pad(img[None], pads, mode=mode)[0])
        crops.append((by, bx))
    return torch.stack(rows), crops


def _smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, Y, X) with reflect padding."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.device)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def plane_batch(
    den: Denoiser, value, tile: Sequence[int], device=None, default: int = accel.CPU_BATCH
) -> int:
    """`inference.batch` as planes per network call: an int as given, "auto" from free GPU
    memory for (Y, X) `tile` planes, at most 64 (more does not speed up the GPU and delays the
    overlapped read of the next batch; `default` on a CPU)."""
    dev = pick_device(device or "auto")
    m = getattr(den.net, "multiple", 1)
    shape = (den.net.config.get("in_channels", 1), *(t + m for t in tile[-2:]))
    probe = lambda: accel.item_bytes(accel.prepare(den, dev, compile=False), shape)  # noqa: E731
    return accel.batch_size(value, dev, probe, default, most=64)


@torch.no_grad()
def denoise_v(
    den: Denoiser,
    v: np.ndarray,
    sigma: Sequence[float],
    origins: Sequence[Sequence[int]],
    probes: int = 0,
    seed: int = 0,
    batch: int = 16,
    delta: float = 1e-3,
    smooth: float = 2.0,
    device=None,
    noise_var: np.ndarray | None = None,
    level: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior mean (and, with `probes` > 0, posterior std) of tiles in the v domain.

    v: (B, C, [Z,] Y, X); sigma: per channel; origins: global (z,) y, x of each tile's first
    pixel. The mean is D(v, level * sigma_c) (Tweedie: E[x | y] at the noise's own level when
    `level` is 1, one network evaluation; see `restore.level`). The posterior variance per pixel
    is sigma^2 dE[x_i|y]/dy_i (second-order Tweedie), its Jacobian diagonal estimated with
    `probes` Rademacher probes drawn by global pixel position (Hutchinson), by finite
    differences, then smoothed (Gaussian, `smooth` px); with `noise_var` (like v: the per-pixel
    noise variance) it replaces sigma^2 there.
    """
    dev = pick_device(device or "auto")
    den = accel.prepare(den, dev)
    b, c, *sp = v.shape
    m = getattr(den.net, "multiple", 1)
    rademacher = None
    if probes > 0:
        noise = PositionalNoise(seed, origins)
        like = torch.empty(v.shape, dtype=torch.float32)
        rademacher = [torch.sign(noise.draw(like, k)).numpy() for k in range(probes)]
    planes = v.reshape(b, c, -1, *sp[-2:])  # (B, C, Z, Y, X), Z = 1 in 2D
    nz = planes.shape[2]
    flat = torch.from_numpy(np.ascontiguousarray(planes)).reshape(-1, 1, *sp[-2:])
    sig = torch.tensor(np.asarray(sigma, np.float32)).view(1, c, 1).expand(b, c, nz).reshape(-1)
    org = [tuple(origins[i][-2:]) for i in range(b) for _ in range(c * nz)]
    probe_flat = None
    if rademacher is not None:
        probe_flat = [torch.from_numpy(r.reshape(b, c, nz, *sp[-2:])).reshape(-1, 1, *sp[-2:])
                      for r in rademacher]  # fmt: skip
    nv = None
    if noise_var is not None:
        nv = torch.from_numpy(np.ascontiguousarray(noise_var, np.float32)).reshape(flat.shape)
    mean = torch.empty_like(flat)
    var = torch.empty_like(flat) if probes > 0 else None
    for i in range(0, flat.shape[0], batch):
        sl = slice(i, i + batch)
        xb, crops = _align_pad(accel.to_device(flat[sl], dev), org[sl], m)
        sb = sig[sl].to(dev)
        d = den(xb, sb * level)
        mean[sl] = _crop(d, crops, sp[-2:]).cpu()
        if probes > 0:
            if level != 1.0:  # the identity holds at the data's own level
                d = den(xb, sb)
            acc = torch.zeros_like(flat[sl])
            for p in probe_flat:
                pb, _ = _align_pad(accel.to_device(p[sl], dev), org[sl], m)
                jp = _crop((den(xb + delta * pb, sb) - d) / delta, crops, sp[-2:]).cpu()
                acc += p[sl] * jp
            diag = _smooth(acc / probes, smooth) if smooth else acc / probes
            w = sig[sl].view(-1, 1, 1, 1) ** 2 if nv is None else nv[sl]
            var[sl] = w * diag.clamp_min(0)
    mean_np = mean.reshape(b, c, *sp).numpy()
    std_np = None if var is None else var.sqrt().reshape(b, c, *sp).numpy()
    return mean_np, std_np


def _crop(x: torch.Tensor, crops, size) -> torch.Tensor:
    rows = [img[:, y : y + size[0], xx : xx + size[1]] for img, (y, xx) in zip(x, crops)]
    return torch.stack(rows)
