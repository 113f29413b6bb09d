"""The segmentation model: a conditional diffusion UNet on the engine, its training, and
K-sample inference giving probability, uncertainty and the individual samples.

The network generates the representation of `represent` (fg, dist per kind) conditioned on the
normalized image channels. The model is 2D; 3D images are segmented slice-wise (each z plane is
a batch element; noise still depends on the global (z, y, x) position, so tiles stay seam-free).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .. import diffusion as dm
from ..diffusion import accel
from ..diffusion.posterior import PlaneNoise, Posterior, mean_std
from .represent import KINDS, PairSource, kind_channels
from .scale import training_diameters

log = logging.getLogger("microdiff.segment")
TASK = "segment"
# training noise: log-normal sigma centred at e^1.0 ~ 2.7 (engine default e^-1.2 ~ 0.3 trains
# mostly the low-noise steps that barely need the image); sigma_data ~ the target's std
P_MEAN, P_STD, SIGMA_DATA = 1.0, 1.2, 0.8
# sampling: Karras from SIGMA_MAX down to SIGMA_MIN, inside the trained range (a final step
# at 0.5 already settles fg/dist; lower adds nothing but steps). A checkpoint may name its own
# start (`segment.sigma_max` in its config): a model that reads more of the noisy input at
# sigma 5 than the shipped one does needs a start where pure noise is what it was trained on
SIGMA_MAX, SIGMA_MIN = 5.0, 0.5


def build(
    kinds=("nuclei",),
    cond_channels: int = 1,
    width: int = 32,
    depth: int = 3,
    sigma_data: float = SIGMA_DATA,
) -> dm.Denoiser:
    """A fresh conditional denoiser for `kinds` (2 output channels per kind), local (norms
    without statistics, see `diffusion.unet`), so tiled inference matches whole-image
    inference."""
    return dm.build(2 * len(kinds), cond_channels, width, depth, sigma_data, local=True)


def train_model(
    images,
    labels,
    out,
    kinds=("nuclei",),
    steps: int = 2000,
    batch: int = 8,
    patch: int = 128,
    width: int = 32,
    depth: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int | None = None,
    device=None,
    progress: bool = False,
    extra_config: dict | None = None,
    source=None,
    p_mean: float = P_MEAN,
    p_std: float = P_STD,
    sigma_data: float = SIGMA_DATA,
    init=None,
    sigma_max: float | None = None,
) -> dm.TrainResult:
    """Train a segmentation denoiser on (image, labels) pairs and write its checkpoint dir.

    images: (C, [Z,] Y, X) normalized arrays; labels: per image one label array per kind.
    source: a patch source to train on instead of PairSource(images, labels, patch), e.g. real
    pairs mixed with synthetic ones (`microdiff.segment.represent.MixedSource`).
    Noise levels are drawn log-normal(p_mean, p_std): centred well above the engine's default,
    so most steps are at noise where the image condition decides the answer (the sampler starts
    at sigma 10, where the model must predict the segmentation from the image alone).
    init: a checkpoint dir of the same architecture to start from (fine-tuning; fresh optimizer);
    it may take fewer condition channels (the last ones are new): their first-layer weights start
    at zero, so step 0 computes what `init` computes.
    sigma_max: the sampling start recorded for this model (default: SIGMA_MAX).
    """
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown kinds {bad}; use {KINDS}")
    source = source or PairSource(images, labels, patch=patch)
    den = build(kinds, images[0].shape[0], width, depth, sigma_data)
    # the first kind's median object size, for `segment.scale: auto` (2D label images only)
    d = training_diameters([lab[0] for lab in labels if np.ndim(lab[0]) == 2]) if labels else None
    if init is not None:
        den.load_state_dict(widened(Model.load(init, device="cpu").denoiser.state_dict(), den))
    cfg = {
        "task": TASK,
        "segment": {
            "kinds": list(kinds),
            "cond_channels": images[0].shape[0],
            "representation": "fg+dist",
            "slicewise": True,
            **({"sigma_max": float(sigma_max)} if sigma_max else {}),
            **({"object_diameter": d[1], "object_diameter_range": [d[0], d[2]]} if d else {}),
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
        warmup=100,
        loss=dm.EDMLoss(p_mean, p_std),
        checkpoint_path=out,
        checkpoint_every=max(steps // 4, 1),
        threads=threads,
        device=device,
        progress=progress,
        config=cfg,
        log_every=100,
    )


def widened(state: dict, den: torch.nn.Module) -> dict:
    """`state` (a denoiser's weights) for `den`, which may take more condition channels: the
    input convolution's weights for the new (last) input channels are zero."""
    key = "net.inp.weight"
    old, new = state[key], den.state_dict()[key]
    if old.shape != new.shape:
        if old.shape[0] != new.shape[0] or old.shape[1] > new.shape[1]:
            raise ValueError(
                f"cannot start a {tuple(new.shape)} input layer from {tuple(old.shape)}"
            )
        w = torch.zeros_like(new)
        w[:, : old.shape[1]] = old
        state = {**state, key: w}
    return state


@dataclass
class Model:
    denoiser: torch.nn.Module  # D(x, sigma, cond)
    kinds: tuple[str, ...]
    cond_channels: int
    hash: str | None = None
    distilled_steps: int | None = None  # a distilled student's sampling steps
    sigma_max: float = SIGMA_MAX  # where its sampling starts (`segment.sigma_max`)
    diameter: float | None = None  # its training objects' median diameter (`segment.scale`)
    diameter_range: tuple[float, float] | None = None  # and their 10th..90th percentile

    @classmethod
    def load(cls, path, device="auto", shared: bool = False) -> Model:
        """The checkpoint at `path`; `shared`: for inference, loaded once per process
        (`diffusion.load_shared`: never train its network)."""
        # configs from before the architecture recorded `local` said it in their section
        local = bool((dm.read_config(path).get(TASK) or {}).get("local"))
        load = dm.load_shared if shared else dm.load_checkpoint
        den, cfg = load(path, dm.pick_device(device), local=local, task=TASK)
        seg = cfg[TASK]
        student = (cfg.get("distilled") or {}).get("student_steps")
        kinds, cond = tuple(seg["kinds"]), int(seg["cond_channels"])
        smax = float(seg.get("sigma_max", SIGMA_MAX))
        diameter, spread = seg.get("object_diameter"), seg.get("object_diameter_range")
        return cls(den, kinds, cond, cfg.get("params_hash"), student, smax, diameter,
                   tuple(spread) if spread else None)  # fmt: skip


def posterior(
    samples: int = 4, steps: int = 2, sampler: str = "ddim", seed: int = 0, sigma_max=SIGMA_MAX
) -> Posterior:
    """The segment stage's K-sample posterior: Karras from `sigma_max` down to SIGMA_MIN."""
    return Posterior(SIGMA_MIN, sigma_max, steps, sampler, samples, seed)


def predict(
    model: Model,
    cond: np.ndarray,
    origins,
    samples: int = 4,
    steps: int = 2,
    sampler: str = "ddim",
    seed: int = 0,
    sigma_max: float | None = None,
    pad: int = 0,
    first: int = 0,
) -> np.ndarray:
    """K samples of the representation for a batch of tiles.

    cond: (B, C, [Z,] Y, X) normalized image tiles; origins: global position of each tile's
    first pixel. Returns (B, K, 2 * kinds, [Z,] Y, X) float32 samples in [-1, 1].
    `sigma_max`: where sampling starts (default: the model's own, `Model.sigma_max`).
    `pad` > 0 reflects every tile by `pad` pixels in y and x first (cropped off after), so a
    whole image sees the same mirrored context beyond its border as a border tile does.
    `first` > 0: only samples `first`..K-1 (B, K - first, ...), the same as those of a whole
    call (each sample has noise of its own); the others were drawn before (the scale's first
    pass, `scale.Scale.first_samples`).
    """
    if first >= samples:
        return np.zeros((cond.shape[0], 0, 2 * len(model.kinds), *cond.shape[2:]), np.float32)
    if pad > 0:
        width = [(0, 0)] * (cond.ndim - 2) + [(pad, pad)] * 2
        cond = np.pad(cond, width, mode="reflect")
        origins = [tuple(o[:-2]) + (o[-2] - pad, o[-1] - pad) for o in origins]
        out = predict(model, cond, origins, samples, steps, sampler, seed, sigma_max,
                      first=first)  # fmt: skip
        return out[..., pad:-pad, pad:-pad]
    sigma_max = model.sigma_max if sigma_max is None else sigma_max
    dev = next(model.denoiser.parameters()).device
    den = accel.prepare(model.denoiser, dev)
    three = cond.ndim == 5
    c = accel.to_device(np.ascontiguousarray(cond, np.float32), dev)
    b = c.shape[0]
    planes = c.shape[2] if three else 1
    if three:  # slice-wise: (B, C, Z, Y, X) -> (B*Z, C, Y, X)
        c = c.permute(0, 2, 1, 3, 4).reshape(b * planes, c.shape[1], *c.shape[3:])
    shape = (c.shape[0], 2 * len(model.kinds), *c.shape[2:])

    def noise(s):
        return PlaneNoise(s, origins, planes) if three else dm.PositionalNoise(s, origins)

    def finish(x):
        x = x.clamp(-1, 1).float().cpu()
        if three:
            x = x.reshape(b, planes, shape[1], *shape[2:]).permute(0, 2, 1, 3, 4)
        return x.numpy()

    post = posterior(samples, steps, sampler, seed, sigma_max)
    return np.stack(post.draw(den, shape, noise, finish, cond=c, device=dev, first=first), axis=1)


def nuclei_found(samples: np.ndarray, kinds) -> np.ndarray:
    """The nuclei found: (B, K, 2 * kinds, ...) samples in [-1, 1] of a model with `kinds` ->
    (B, 1, ...) float32 mean nuclei foreground over the K samples in [0, 1] (the probability
    channel of the shard store), the cell model's last condition channel."""
    i = list(kinds).index("nuclei")
    return ((samples[:, :, 2 * i].mean(1) + 1.0) / 2.0)[:, None].astype(np.float32)


def cell_condition(cells: Model, images: np.ndarray, found: np.ndarray) -> np.ndarray:
    """A cells-only model's condition for (B, 2, ...) nuclear and cytoplasm tiles: those two
    channels, and for a model of 3 condition channels also the nuclei found ((B, 1, ...),
    `nuclei_found`)."""
    if cells.cond_channels == 2:
        return images
    return np.concatenate([images, found], axis=1)


def nuclei_prob(
    model: Model,
    image: np.ndarray,
    samples: int = 4,
    steps: int = 1,
    sampler: str = "ddim",
    seed: int = 0,
    pad: int = 0,
) -> np.ndarray:
    """`nuclei_found` of one whole (C, [Z,] Y, X) normalized image (its first
    `model.cond_channels` channels) -> (1, [Z,] Y, X): the cell model's input at training and
    benchmark time, made as the segment stage makes it."""
    s = predict(model, image[None, : model.cond_channels], [(0,) * (image.ndim - 1)], samples,
                steps, sampler, seed, pad=pad)  # fmt: skip
    return nuclei_found(s, model.kinds)[0]


def tile_batch(model: Model, value, tile, pad: int = 0, default: int = accel.CPU_BATCH) -> int:
    """`batch_size` as tiles per network call: an int as given, "auto" from free GPU memory
    for tiles of spatial shape `tile` ([Z,] Y, X) reflected by `pad`, at most 16 (more does not
    speed up the GPU and delays the overlapped read of the next batch; `default` on a CPU)."""
    dev = next(model.denoiser.parameters()).device
    *z, y, x = tile
    yx = (y + 2 * pad, x + 2 * pad)
    planes = int(np.prod(z)) if z else 1

    def per_tile():
        den = accel.prepare(model.denoiser, dev, compile=False)
        per = accel.item_bytes(den, (2 * len(model.kinds), *yx), (model.cond_channels, *yx))
        return per * planes

    return accel.batch_size(value, dev, per_tile, default, most=16)


def nfe(samples: int, steps: int, sampler: str = "ddim") -> int:
    return samples * dm.nfe(sampler, steps)


def shard_channels(*samples: np.ndarray) -> np.ndarray:
    """Each model's (B, K, 2n, ...) samples in [-1, 1] (their kinds in order, the models' one
    after the other) -> (B, kinds * (3 + 2K), ...) float32 in [0, 1], the shard store's
    channels: per kind probability (mean fg), uncertainty (std of fg over the K samples), mean
    dist, then the K samples' fg and their dist. The samples are rescaled straight into their
    channels of the result (the models' arrays are not joined first), and the statistics are
    taken from there."""
    maps = [(s, 2 * j) for s in samples for j in range(s.shape[2] // 2)]
    b, k = samples[0].shape[:2]
    out = np.empty((b, len(maps) * kind_channels(k), *samples[0].shape[3:]), np.float32)
    for i, (s, j) in enumerate(maps):
        base = i * kind_channels(k)
        fg, dist = out[:, base + 3 : base + 3 + k], out[:, base + 3 + k : base + 3 + 2 * k]
        for c, dst in ((j, fg), (j + 1, dist)):
            np.add(s[:, :, c], 1.0, out=dst)
            np.divide(dst, 2.0, out=dst)
        out[:, base], out[:, base + 1] = mean_std(fg, 1)
        out[:, base + 2] = dist.mean(1)
    return out
