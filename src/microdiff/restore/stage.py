"""The restore stage's inference over stores: one shard, the gather, a whole image.

    restore_shard(raw store, tile plan, shard, model, norm, params)   -> shard store (Zarr)
    gather_restore(raw store, tile plan, shard stores, model, params) -> restored.ome.zarr
    restore_image(raw store, norm, model, out, params)                -> both, in one process

(Training: `restore.train`.) The output `restored.ome.zarr` is an NGFF image with the raw
image's axes, grid and channels, float32, in the raw input's intensity units (so the raw image's
norm.json still applies). With posterior uncertainty (`inference.samples` > 1) a second NGFF
image `uncertainty/` inside the store holds one posterior standard deviation channel per
channel (same units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import gather, normalize, provenance, shards, shipped
from ..model_config import read_config
from ..normalize import Normalizer
from .noise_model import NoiseModel

# The network's modules (torch) are imported in the functions that run it: the gather, which
# reads only the model's recorded config, runs without torch.
if TYPE_CHECKING:
    from ..diffusion import Denoiser

DEFAULT_MODEL = shipped.RESTORE


def load_model(path) -> tuple[Denoiser, dict]:
    """A restore checkpoint; its network is local (configs that predate the key included)."""
    from ..diffusion import load_checkpoint

    return load_checkpoint(path, local=True)


def inference_model(path) -> tuple[Denoiser, dict]:
    """A restore checkpoint for inference, loaded once per process (`load_shared`)."""
    from ..diffusion import load_shared

    return load_shared(path, local=True)


def eval_scale(inference: dict, cfg: dict) -> float:
    """The factor on sigma at which the denoiser is evaluated: `inference.level` when a number,
    else (auto) the one the model recorded when it was made (`restore.level`)."""
    level = inference.get("level", "auto")
    if level != "auto":
        return float(level)
    return float((cfg.get("level") or {}).get("scale", 1.0))


def make_process(
    den, noise: NoiseModel, norm: Normalizer, inference: dict, device=None, scale: float = 1.0
):
    """The shard `process` function: raw tiles (B, C, *S) -> restored (+ std) tiles; the
    network is evaluated at `scale` times each channel's noise level (see `restore.level`)."""
    from .denoise import denoise_v, from_v, std_from_v, to_v, variance_map, vst_range

    f_lo, f_hi, sigma = vst_range(noise, norm.low, norm.high)
    k = int(inference.get("samples", 1))
    probes = k if k > 1 else 0

    def process(blocks, origins):
        v = np.stack([to_v(b, noise, f_lo, f_hi, o) for b, o in zip(blocks, origins)])
        nv = None
        if probes:  # the noise variance map (a local filter: seam-free) for the posterior std
            nv = np.empty_like(v)
            for i, c in np.ndindex(v.shape[:2]):
                planes = v[i, c].reshape(-1, *v.shape[-2:])
                nv[i, c] = np.stack(
                    [variance_map(pl, noise, c, f_lo[c], f_hi[c]) for pl in planes]
                ).reshape(v.shape[2:])
        mean, std = denoise_v(
            den,
            v,
            sigma,
            origins,
            probes=probes,
            seed=int(inference.get("seed", 0)),
            batch=int(inference.get("batch", 16)),
            device=device,
            noise_var=nv,
            level=scale,
        )
        out = [from_v(m, noise, f_lo, f_hi) for m in mean]
        if std is not None:
            out = [
                np.concatenate([o, std_from_v(m, s, noise, f_lo, f_hi)])
                for o, m, s in zip(out, mean, std)
            ]
        return np.stack(out)

    return process


def restore_nfe(samples: int, scale: float) -> int:
    """Network evaluations per pixel: the mean, and with K > 1 samples K probes (plus the
    baseline at sigma when the mean is taken at another level)."""
    if samples <= 1:
        return 1
    return 1 + samples + (1 if scale != 1.0 else 0)


def restore_shard(
    raw,
    plan: pd.DataFrame,
    shard: int,
    model_dir,
    norm_path,
    params: dict,
    out,
    threads: int | None = None,
    device=None,
    progress: bool = True,
) -> int:
    """Restore one shard's tiles into the shard store `out`; returns the number of tiles.

    params: {"inference": {halo, batch, samples, seed, level}} (config `restore`).
    """
    from ..diffusion import accel, pick_device, set_threads
    from .denoise import plane_batch

    set_threads(threads)
    norm = Normalizer.from_json(norm_path)
    src = normalize.level0(raw, norm)
    den, cfg = inference_model(model_dir)
    noise = NoiseModel.from_json(cfg["noise"])
    plan = shards.with_halo(plan, src.shape[1:], int(params["inference"]["halo"]))
    inference = dict(params["inference"])  # batch "auto": from free GPU memory
    tile = shards.tile_shape(plan)[-2:]
    inference["batch"] = plane_batch(den, inference.get("batch", 16), tile, device)
    process = make_process(den, noise, norm, inference, device, eval_scale(inference, cfg))
    channels = src.shape[0] * (2 if int(inference.get("samples", 1)) > 1 else 1)
    per_read = max(1, int(inference["batch"]) // src.shape[0])
    return shards.write_shard(
        out, src, plan, shard, process, channels, per_read,
        attrs={"accel": accel.describe(pick_device(device or "auto"))},
        desc=f"restore shard {shard}" if progress else None,
    )  # fmt: skip


def gather_restore(raw, plan: pd.DataFrame, shard_stores: Sequence, model_dir, params: dict, out):
    """Assemble the shard stores into `out` (NGFF, atomic, validated); returns provenance."""
    cfg = read_config(model_dir)
    k = int(params["inference"].get("samples", 1))
    used = eval_scale(params["inference"], cfg)
    reader = gather.ShardReader(shard_stores, plan)
    prov = provenance.record(
        "restore",
        params,
        inputs=[str(raw)],
        model=str(model_dir),
        model_hash=cfg["params_hash"],
        model_mode=cfg.get("mode"),
        model_init=cfg.get("init"),
        accel=gather.accel_of(reader),
        method=cfg.get("method"),
        noise_model=cfg.get("noise"),
        level={**(cfg.get("level") or {}), "used": used},
        nfe=restore_nfe(k, used),
        seed=int(params["inference"].get("seed", 0)),
        units="float32, the raw image's intensity units",
        uncertainty=gather.UNCERTAINTY if k > 1 else None,
    )
    gather.write_image(out, reader, gather.image_meta(raw), prov, "restored")
    return prov


def restore_image(
    raw, norm_path, model_dir, out, params: dict, tile: int = 512, plan=None, **kw
) -> dict:
    """Restore a whole NGFF image in one process (a batch job, the CLI): every shard of the
    tile plan `plan` (None: a plan of `tile`-pixel tiles), then the gather."""
    return shards.run_image(
        restore_shard, gather_restore, raw, norm_path, model_dir, out, params, tile, plan, **kw
    )
