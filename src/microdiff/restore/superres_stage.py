"""The super-resolution stage over stores: train, one shard, gather (and the rules' helpers).

    train_superres(input stores, norm files, params, model dir)           -> models/superres/
    superres_shard(input store, tile plan, shard, model, norm, params)    -> shard store (Zarr)
    gather_superres(input store, tile plan, shard stores, model, params)  -> superres.ome.zarr

The input is `restored.ome.zarr` when the restore stage is enabled, else `raw.ome.zarr` (both in
raw intensity units, so the sample's norm.json normalizes either). The output has the input's
axes and channels, float32 in the same units, its y/x grid finer by the model's factor and its
NGFF scale (pixel size) divided by it; z is untouched (3D images are super-resolved slice-wise).
With `inference.samples` K > 1 the output holds `uncertainty/`, the per-pixel standard deviation
of the K posterior samples (same units), and the image is their mean.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import gather, normalize, provenance, shards
from ..diffusion import EDMLoss, load_checkpoint, load_shared, save_checkpoint, set_threads, train
from ..normalize import Normalizer
from .superres import (
    P_MEAN,
    P_STD,
    PairPatches,
    SelfPairs,
    check_factor,
    explained,
    network,
    sr_nfe,
    superres_planes,
)
from .train import read_sheet_pairs

log = logging.getLogger("microdiff.restore")

# below this share of the residual predicted, the model is flagged as no better than bicubic
MIN_EXPLAINED = 0.02
METHOD = ("conditional diffusion super-resolution (residual over bicubic, EDM), "
          "mean of K posterior samples")  # fmt: skip


def train_superres(
    stores: Sequence,
    norm_paths: Sequence,
    params: dict,
    out,
    threads: int | None = None,
    device=None,
    progress: bool = True,
) -> dict:
    """Train the SR model (engine checkpoint dir `out`); returns its config.

    params (config `restore.superres` without inference): factor, psf_sigma, cond, pairs (TSV
    of LR/HR pairs, or null: pairs made from `stores` by the degradation model), training
    {width, depth, steps, batch, patch, lr, seed}.
    """
    set_threads(threads)
    training = params["training"]
    factor = check_factor(params["factor"])
    cond = params.get("cond", "bicubic")
    if params.get("pairs"):
        source = PairPatches(
            read_sheet_pairs(params["pairs"], ("low", "high")), factor, int(training["patch"]), cond
        )
        mode = "supervised on LR/HR pairs"
    else:
        norms = [Normalizer.from_json(p) for p in norm_paths]
        arrays = [normalize.level0(s, n) for s, n in zip(stores, norms)]
        source = SelfPairs(arrays, norms, factor,
                           float(params["psf_sigma"]), int(training["patch"]), cond)  # fmt: skip
        mode = "self-supervised: the images degraded by the PSF + binning model"
    den = network(training)
    gain = source.calibrate(den.sigma_data)
    log.info("training the super-resolution model x%d (%s), residual gain %.3f", factor, mode, gain)
    result = train(
        den,
        source,
        int(training["steps"]),
        batch=int(training["batch"]),
        lr=float(training["lr"]),
        seed=int(training.get("seed", 0)),
        warmup=min(50, int(training["steps"]) // 10),
        loss=EDMLoss(P_MEAN, P_STD),
        progress=progress,
        device=device,
        threads=threads,
    )
    share = explained(result.denoiser, source)
    log.info("the model predicts %.1f%% of the residual over %s upsampling on fresh training "
             "pairs", 100 * share, cond)  # fmt: skip
    if share < MIN_EXPLAINED:
        log.warning(
            "the super-resolution model %s is no better than %s interpolation on its own "
            "training pairs (it predicts %.1f%% of the residual): its training diverged or is too "
            "short; lower restore.superres.training.lr or raise its steps",
            out, cond, 100 * share,
        )  # fmt: skip
    cfg = {
        "task": "superres",
        "explained_residual": share,
        "factor": factor,
        "psf_sigma": params.get("psf_sigma"),
        "cond": cond,
        "gain": gain,
        "mode": mode,
        "params": params,
        "data_hash": source.data_hash,
        "inputs": [str(s) for s in stores],
        "norm": "none: GroupNorm statistics removed, affine kept (a local network)",
        "final_loss": float(np.mean(result.losses[-20:])) if result.losses else None,
        "method": METHOD,
    }
    return save_checkpoint(out, result.denoiser, cfg)


def load_model(path):
    return load_checkpoint(path, local=True, task="superres")  # local: configs predating the key


def make_process(den, cfg: dict, norm: Normalizer, inference: dict, device=None):
    """The shard `process`: input tiles (B, C, [Z,] Y, X) -> (B, C[+C], [Z,] fY, fX)."""
    f, k = int(cfg["factor"]), int(inference.get("samples", 1))
    lo = norm.low.astype(np.float32)
    scale = (norm.high - norm.low).astype(np.float32)

    def process(blocks, origins):
        b, c, *sp = blocks.shape
        planes = blocks.reshape(b, c, -1, *sp[-2:])
        nz = planes.shape[2]
        v = (planes - lo.reshape(1, c, 1, 1, 1)) / scale.reshape(1, c, 1, 1, 1)
        keys = [(ci * (1 << 20) + (o[0] + zi if len(o) == 3 else 0), o[-2], o[-1])
                for o in origins for ci in range(c) for zi in range(nz)]  # fmt: skip
        mean, std = superres_planes(den, v.reshape(-1, *sp[-2:]), keys, f, float(cfg["gain"]),
                                    inference, cfg.get("cond", "bicubic"), device)  # fmt: skip
        shape = (b, c, *sp[:-2], sp[-2] * f, sp[-1] * f)
        s = scale.reshape(1, c, *([1] * (len(sp) - 2)), 1, 1)
        out = mean.reshape(shape) * s + lo.reshape(s.shape)
        if k > 1:
            out = np.concatenate([out, std.reshape(shape) * s], axis=1)
        return out

    return process, f


def superres_shard(
    src,
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
    """Super-resolve one shard's tiles into the shard store `out`; returns the tile count.

    params: {"inference": {halo, batch, sampler, steps, samples, seed}}.
    """
    set_threads(threads)
    inference = params["inference"]
    norm = Normalizer.from_json(norm_path)
    arr = normalize.level0(src, norm)
    den, cfg = load_shared(model_dir, local=True, task="superres")  # once per process
    plan = shards.with_halo(plan, arr.shape[1:], int(inference["halo"]))
    process, f = make_process(den, cfg, norm, inference, device)
    channels = arr.shape[0] * (2 if int(inference.get("samples", 1)) > 1 else 1)
    planes_per_tile = arr.shape[0] * int(np.prod(shards.tile_shape(plan)[:-2]))
    per_read = max(1, int(inference.get("batch", 16)) // planes_per_tile)
    return shards.write_shard(
        out, arr, plan, shard, process, channels, per_read, factor=f,
        desc=f"superres shard {shard}" if progress else None,
    )  # fmt: skip


def gather_superres(src, plan: pd.DataFrame, shard_stores: Sequence, model_dir, params: dict, out):
    """Assemble the shard stores into `out` (NGFF on the finer grid, atomic, validated)."""
    _, cfg = load_checkpoint(model_dir)
    f = int(cfg["factor"])
    inference = params["inference"]
    k = int(inference.get("samples", 1))
    prov = provenance.record(
        "superres",
        params,
        inputs=[str(src)],
        model=str(model_dir),
        model_hash=cfg["params_hash"],
        model_mode=cfg.get("mode"),
        method=cfg.get("method"),
        factor=f,
        psf_sigma=cfg.get("psf_sigma"),
        nfe=sr_nfe(inference),
        seed=int(inference.get("seed", 0)),
        units="float32, the input image's intensity units",
        uncertainty=gather.UNCERTAINTY if k > 1 else None,
    )
    reader = gather.ShardReader(shard_stores, plan, factor=f)
    gather.write_image(out, reader, gather.image_meta(src).finer(f), prov, "superres")
    return prov


def superres_image(
    src, norm_path, model_dir, out, params: dict, tile: int = 256, plan=None, **kw
) -> dict:
    """Super-resolve a whole NGFF image in one process (a batch job, the CLI): every shard of
    the tile plan `plan` (None: a plan of `tile`-pixel tiles), then the gather."""
    return shards.run_image(
        superres_shard, gather_superres, src, norm_path, model_dir, out, params, tile, plan, **kw
    )
