"""The restore stage as three functions over stores: train, one shard, gather.

    train_restore(raw stores, norm files, params, model dir)        -> models/restore/
    restore_shard(raw store, tile plan, shard, model, norm, params)  -> shard store (Zarr)
    gather_restore(raw store, tile plan, shard stores, model, params) -> restored.ome.zarr

The output `restored.ome.zarr` is an NGFF image with the raw image's axes and channels, float32,
in the raw input's intensity units (so the raw image's norm.json still applies); with
super-resolution its y/x grid is finer by `factor` and its NGFF scale says so. With posterior
uncertainty (`inference.samples` > 1) a second NGFF image `uncertainty/` inside the store holds
one posterior standard deviation channel per channel (same units).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr
from tqdm import tqdm

from .. import normalize, provenance, shards, shipped
from ..atomic import atomic_output
from ..diffusion import (
    Denoiser,
    UNet,
    accel,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    set_threads,
)
from ..io import ngff
from ..normalize import Normalizer
from ..tiling import read_box, sample_patch_boxes, spatial_ndim
from .denoise import (
    augment,
    denoise_v,
    from_v,
    localize,
    plane_batch,
    std_from_v,
    to_v,
    train_denoiser,
    variance_map,
    vst_range,
)
from .level import recorded_level
from .noise_model import NoiseModel, fit_noise_model

log = logging.getLogger("microdiff.restore")

DEFAULT_MODEL = shipped.RESTORE
UNCERTAINTY = "uncertainty"


def level0(store) -> zarr.Array:
    return zarr.open_group(str(store), mode="r")["0"]


def sample_planes(arrays: Sequence, n: int, patch: int, rng: np.random.Generator):
    """`n` random 2D patches per array: (array index, (C, Y, X) float32) pairs (3D: a z plane)."""
    out = []
    for k, arr in enumerate(arrays):
        sp = arr.shape[1:]
        size = (1, patch, patch) if len(sp) == 3 else (patch, patch)
        for box in sample_patch_boxes(sp, size, n, rng):
            block = read_box(arr, box).astype(np.float32)
            out.append((k, block.reshape(block.shape[0], *block.shape[-2:])))
    return out


def fit_experiment_noise(arrays: Sequence, patches: int = 16, patch: int = 128, seed: int = 0):
    """One Poisson-Gaussian model per channel, pooled over the experiment's images."""
    rng = np.random.default_rng([seed, 11])
    planes = [p for _, p in sample_planes(arrays, patches, patch, rng)]
    return fit_noise_model(planes, arrays[0].shape[0])


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
    import torch

    return torch.from_numpy(np.stack(items).astype(np.float32))


def _t(values):
    import torch

    return torch.tensor(np.asarray(values, np.float32))


def read_pairs(sheet) -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisy/clean pairs from a TSV with columns noisy, clean (paths relative to the TSV)."""
    from ..io.readers import open_image

    sheet = Path(sheet)
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    if not {"noisy", "clean"} <= set(table.columns):
        raise ValueError(f"{sheet}: needs columns noisy and clean")
    pairs = []
    for row in table.itertuples(index=False):
        imgs = []
        for p in (row.noisy, row.clean):
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


def load_model(path) -> tuple[Denoiser, dict]:
    """A restore checkpoint, its network made local (see `denoise.Affine`)."""
    den, cfg = load_checkpoint(path)
    return localize(den), cfg


def architecture(training: dict) -> dict:
    return {"in_channels": 1, "width": int(training["width"]), "depth": int(training["depth"])}


def initial_model(training: dict, default=DEFAULT_MODEL) -> tuple[Denoiser, str]:
    """The shipped default when asked for and its architecture matches, else a fresh network."""
    want = UNet(**architecture(training)).config
    if training.get("init", "default") == "default" and (Path(default) / "config.json").is_file():
        den, cfg = load_model(default)
        if cfg["architecture"] == want:
            return den, f"fine-tuned from the shipped default ({cfg['params_hash']})"
        log.info("shipped default has another architecture: training from scratch")
    with torch.random.fork_rng(devices=[]):  # seeded init: the same config gives the same model
        torch.manual_seed(int(training.get("seed", 0)))
        fresh = localize(Denoiser(UNet(**want)))
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
    norms = [Normalizer.from_json(p) for p in norm_paths]
    # flat-field corrected when the statistics were
    arrays = [normalize.level0(s, norms[i] if norms else None) for i, s in enumerate(stores)]
    noise = fit_experiment_noise(arrays, seed=int(training.get("seed", 0)))
    log.info("noise model (Var = a E + b per channel): %s", noise.to_json())
    losses: list[float] = []
    if not params.get("train", True):
        den, cfg0 = load_model(default)
        how, mode = f"shipped default as is ({cfg0['params_hash']})", "pretrained"
        level = recorded_level(self_supervised=False)
    else:
        den, how = initial_model(training, default)
        if params.get("pairs"):
            source, _ = pair_source(read_pairs(params["pairs"]), int(training["patch"]))
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
    cfg = {
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
    return save_checkpoint(out, den, cfg)


def with_halo(plan: pd.DataFrame, shape: Sequence[int], halo: int) -> pd.DataFrame:
    """The plan with halo boxes regrown to `halo` pixels (y, x; z keeps the plan's halo)."""
    plan = plan.copy()
    names = ("z", "y", "x")[-spatial_ndim(plan) :]
    for a, n in zip(names, shape):
        if a in "yx":
            plan[f"h{a}0"] = np.maximum(plan[f"{a}0"] - halo, 0)
            plan[f"h{a}1"] = np.minimum(plan[f"{a}1"] + halo, n)
    return plan


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

    return process, restore_nfe(k, scale)


def restore_nfe(samples: int, scale: float) -> int:
    """Network evaluations per pixel: the mean, and with K > 1 samples K probes (plus the
    baseline at sigma when the mean is taken at another level)."""
    if samples <= 1:
        return 1
    return 1 + samples + (1 if scale != 1.0 else 0)


def restore_shard(
    raw,
    plan_path,
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

    params: {"inference": {halo, batch, samples, seed}, "superres": {...}} (config `restore`).
    """
    set_threads(threads)
    norm = Normalizer.from_json(norm_path)
    src = normalize.level0(raw, norm)
    den, cfg = load_model(model_dir)
    noise = NoiseModel.from_json(cfg["noise"])
    plan = with_halo(pd.read_parquet(plan_path), src.shape[1:], int(params["inference"]["halo"]))
    inference = dict(params["inference"])  # batch "auto": from free GPU memory
    tile = shards.tile_shape(plan)[-2:]
    inference["batch"] = plane_batch(den, inference.get("batch", 16), tile, device)
    scale = eval_scale(inference, cfg)
    process, _nfe = make_process(den, noise, norm, inference, device, scale)
    n_out = src.shape[0] * (2 if int(inference.get("samples", 1)) > 1 else 1)
    tiles = int((plan["shard"] == shard).sum())
    bar = tqdm(total=tiles, disable=not progress, file=sys.stderr, desc=f"restore shard {shard}")
    with atomic_output(out) as tmp:
        store = shards.create_shard_store(tmp, (n_out, *src.shape[1:]), np.float32, plan)
        store.attrs["accel"] = accel.describe(pick_device(device or "auto"))
        per_read = max(1, int(inference.get("batch", 16)) // src.shape[0])
        n = shards.run_shard(src, plan, shard, process, store, per_read, progress=bar.update)
    bar.close()
    return n


class _Split:
    """A write target that sends the first `c` channels to `a` and the rest to `b`."""

    def __init__(self, a, b, c: int):
        self.a, self.b, self.c = a, b, c

    def __setitem__(self, sl, value):
        self.a[sl] = value[: self.c]
        if self.b is not None:
            self.b[sl] = value[self.c :]


def write_mean_and_std(
    out, shard_stores, plan, shape, axes, scale, names, prov, k: int, factor: int, name: str
) -> None:
    """Gather shard stores into NGFF `out`: the mean image, and `uncertainty/` when k > 1.

    Shards hold the mean channels first and, with K samples, their standard deviations after.
    """
    c = shape[0]
    with atomic_output(out) as tmp:
        group = ngff.create_image(
            tmp, shape, np.float32, axes, scale, names, attrs={"microdiff": prov}, name=name
        )
        unc = None
        if k > 1:
            unc = ngff.create_image(
                Path(tmp) / UNCERTAINTY, shape, np.float32, axes, scale,
                [f"{n} posterior std" for n in names], attrs={"microdiff": prov},
                name="posterior std",
            )  # fmt: skip
        dst = _Split(group["0"], None if unc is None else unc["0"], c)
        shards.gather(shard_stores, plan, dst, factor)
        for g in [group] + ([unc] if unc is not None else []):
            ngff.fill_pyramid(g)
            ngff.set_display_windows(g)
        ngff.validate(tmp)
        if unc is not None:
            ngff.validate(Path(tmp) / UNCERTAINTY)


def raw_meta(raw) -> tuple[str, dict, list[str]]:
    """(axes, spatial scale, channel names) of an NGFF image."""
    g = zarr.open_group(str(raw), mode="r")
    ms = g.attrs["multiscales"][0]
    axes = "".join(a["name"] for a in ms["axes"])
    sc = next(t["scale"] for t in ms["datasets"][0]["coordinateTransformations"])
    names = [ch["label"] for ch in g.attrs.get("omero", {}).get("channels", [])]
    return axes, {a: float(s) for a, s in zip(axes, sc) if a != "c"}, names


def shard_accel(shard_stores: Sequence) -> dict | None:
    """How the shard jobs ran the network (device, bf16, ...; `accel.describe`)."""
    if not shard_stores:
        return None
    return zarr.open_array(str(shard_stores[0]), mode="r").attrs.get("accel")


def gather_restore(
    raw, plan_path, shard_stores: Sequence, model_dir, params: dict, out, factor: int = 1
) -> dict:
    """Assemble the shard stores into `out` (NGFF, atomic, validated); returns provenance."""
    src = level0(raw)
    axes, scale, names = raw_meta(raw)
    plan = pd.read_parquet(plan_path)
    _, cfg = load_checkpoint(model_dir)
    c = src.shape[0]
    k = int(params["inference"].get("samples", 1))
    used = eval_scale(params["inference"], cfg)
    shape = (c, *src.shape[1:-2], src.shape[-2] * factor, src.shape[-1] * factor)
    out_scale = {a: v / factor if a in "yx" else v for a, v in scale.items()}
    prov = provenance.record(
        "restore",
        params,
        inputs=[str(raw)],
        model=str(model_dir),
        model_hash=cfg["params_hash"],
        model_mode=cfg.get("mode"),
        model_init=cfg.get("init"),
        accel=shard_accel(shard_stores),
        method=cfg.get("method"),
        noise_model=cfg.get("noise"),
        level={**(cfg.get("level") or {}), "used": used},
        nfe=restore_nfe(k, used),
        seed=int(params["inference"].get("seed", 0)),
        units="float32, the raw image's intensity units",
        factor=factor,
        uncertainty=UNCERTAINTY if k > 1 else None,
    )
    write_mean_and_std(
        out, shard_stores, plan, shape, axes, out_scale, names, prov, k, factor, "restored"
    )
    return prov


def restore_image(
    raw, norm_path, model_dir, out, params: dict, tile: int = 512, plan_path=None, **kw
) -> dict:
    """Restore a whole NGFF image in one process (a batch job, the CLI): every shard of the
    tile plan `plan_path` (None: a plan of `tile`-pixel tiles), then the gather."""
    from ..provenance import write_table
    from ..tiling import plan_store

    with tempfile.TemporaryDirectory(dir=Path(out).parent) as tmp:
        if plan_path is None:
            plan = plan_store(raw, tile, int(params["inference"]["halo"]))
            plan_path = Path(tmp) / "tiles.parquet"
            write_table(plan_path, plan, {})
        return shards.run_whole(
            pd.read_parquet(plan_path, columns=["shard"]),
            out,
            lambda i, store: restore_shard(
                raw, plan_path, i, model_dir, norm_path, params, store, **kw
            ),  # fmt: skip
            lambda stores: gather_restore(raw, plan_path, stores, model_dir, params, out),
        )
