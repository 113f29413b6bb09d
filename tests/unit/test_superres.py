"""Super-resolution: degradation model, training beats bicubic, x2 stage, seams, 3D, provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from microdiff import normalize, tiling
from microdiff.io import ngff
from microdiff.restore.superres import (
    PairPatches,
    SelfPairs,
    bin_mean,
    check_factor,
    degrade,
    explained,
    network,
    superres_planes,
    upsample,
)
from microdiff.restore.superres_stage import (
    MIN_EXPLAINED,
    gather_superres,
    load_model,
    superres_shard,
    train_superres,
)
from microdiff.simulate import simulate_image

PSF = 1.5
PARAMS = {"factor": 2, "psf_sigma": PSF, "cond": "bicubic", "pairs": None,
          "training": {"width": 8, "depth": 2, "steps": 250, "batch": 8, "patch": 32,
                       "lr": 0.001, "seed": 0}}  # fmt: skip


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def write_store(path, data, scale):
    axes = "czyx" if data.ndim == 4 else "cyx"
    chunks = (1, *([1] if data.ndim == 4 else []), 32, 32)
    g = ngff.create_image(path, data.shape, np.float32, axes, scale, ["nuclei", "cytoplasm"],
                          chunks=chunks)  # fmt: skip
    g["0"][:] = data
    ngff.fill_pyramid(g)
    return path


def test_degradation_model():
    assert check_factor(4) == 4
    with pytest.raises(ValueError):
        check_factor(3)
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.allclose(bin_mean(x, 2), [[2.5, 4.5], [10.5, 12.5]])
    flat = np.full((2, 3, 12, 8), 7.0, np.float32)
    assert np.allclose(degrade(flat, 4, 2.0), 7.0) and degrade(flat, 4, 2.0).shape == (2, 3, 3, 2)
    # upsampling puts LR pixel centres at the centres of their f x f blocks: on a ramp of slope
    # 1 a half-pixel shift would err by 0.5 (bicubic with a = -0.75 errs by < 0.1 on its own)
    ramp = np.tile(np.arange(16, dtype=np.float32), (16, 1))
    up = upsample(torch.from_numpy(bin_mean(ramp, 2))[None, None], 2)[0, 0].numpy()
    assert np.abs(up - ramp)[:, 4:-4].max() < 0.1
    assert abs(float((up - ramp)[:, 4:-4].mean())) < 1e-4


def test_pairs_must_differ_by_the_factor():
    lr, hr = np.zeros((1, 16, 16)), np.zeros((1, 30, 32))
    with pytest.raises(ValueError, match="not 2 times"):
        PairPatches([(lr, hr)], 2, 16)
    src = PairPatches([(np.random.rand(1, 16, 16), np.random.rand(1, 32, 32))], 2, 16)
    x0, cond = src.sample(3, np.random.default_rng(0))
    assert x0.shape == cond.shape == (3, 1, 16, 16)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny SR model trained (self-supervised) on one clean simulated image."""
    d = tmp_path_factory.mktemp("sr")
    hr = simulate_image((128, 128), photons=30, seed=1, psf_sigma=0.5).clean.astype(np.float32)
    store = write_store(d / "train.ome.zarr", hr, {"y": 0.25, "x": 0.25})
    normalize.compute([store], (1.0, 99.8), d / "train-norm.json")
    cfg = train_superres([store], [d / "train-norm.json"], PARAMS, d / "model", threads=1,
                         progress=False)  # fmt: skip
    return d, cfg, normalize.Normalizer.from_json(d / "train-norm.json")


@pytest.fixture(scope="module")
def test_image(model):
    """A held-out clean image (HR truth) and its degradation (LR input) as a store."""
    d, _, norm = model
    hr = simulate_image((128, 128), photons=30, seed=7, psf_sigma=0.5).clean.astype(np.float32)
    lr = degrade(hr, 2, PSF)
    store = write_store(d / "lr.ome.zarr", lr, {"y": 0.5, "x": 0.5})
    normalize.compute([store], (1.0, 99.8), d / "lr-norm.json")
    return hr, lr, store


def test_beats_bicubic_after_short_training(model, test_image):
    d, cfg, norm = model
    hr, lr, _ = test_image
    den, cfg = load_model(d / "model")
    v_hr, v_lr = norm.forward(hr), norm.forward(lr)
    keys = [(c, 0, 0) for c in range(2)]
    sr, _ = superres_planes(den, v_lr, keys, 2, cfg["gain"], {"steps": 1, "samples": 1})
    bicubic = upsample(torch.from_numpy(v_lr)[:, None], 2)[:, 0].numpy()
    gain_db = psnr(sr, v_hr) - psnr(bicubic, v_hr)
    assert gain_db > 1.0, f"SR beats bicubic by only {gain_db:.2f} dB"
    assert cfg["explained_residual"] > 0.1  # the training-time check agrees


def test_an_untrained_model_is_flagged_as_no_better_than_bicubic():
    """`explained` is the check train_superres logs and records: a network that predicts no
    residual (a fresh one: zero-initialised output layer) scores ~0, below MIN_EXPLAINED."""
    hr = simulate_image((64, 64), photons=30, seed=3, psf_sigma=0.5).clean.astype(np.float32)
    src = SelfPairs([hr], [normalize.Normalizer([0.0, 0.0], [hr.max()] * 2)], 2, PSF, 32)
    den = network({"width": 8, "depth": 2, "seed": 0})
    src.calibrate(den.sigma_data)
    assert explained(den, src, n=8) < MIN_EXPLAINED


def run_stage(d, store, tile, inference, tag):
    shape = zarr.open_group(str(store), mode="r")["0"].shape[1:]
    plan = tiling.plan_tiles(shape, tile, 4, tiles_per_shard=4)
    params = {"inference": {"halo": 12, "batch": 16, "sampler": "dpmpp_2m", "seed": 0,
                            **inference}}  # fmt: skip
    stores = []
    for s in range(tiling.n_shards(plan)):
        stores.append(d / f"shard-{tag}-{s}.zarr")
        superres_shard(store, plan, s, d / "model", d / "lr-norm.json", params, stores[-1],
                       threads=1, progress=False)  # fmt: skip
    out = d / f"sr-{tag}.ome.zarr"
    return out, gather_superres(store, plan, stores, d / "model", params, out)


def test_stage_x2_shape_scale_uncertainty_provenance(model, test_image):
    d, cfg, _ = model
    hr, lr, store = test_image
    out, prov = run_stage(d, store, 32, {"steps": 2, "samples": 2}, "x2")
    ngff.validate(out)
    g = zarr.open_group(str(out), mode="r")
    assert g["0"].shape == hr.shape and g["0"].dtype == np.float32
    scale = g.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.25, 0.25]
    meta = g.attrs["microdiff"]
    assert meta["stage"] == "superres" and meta["factor"] == 2 and meta["nfe"] == 4
    assert meta["model_hash"] == cfg["params_hash"] and "diffusion" in meta["method"]
    assert meta["params"]["inference"]["samples"] == 2 and meta["psf_sigma"] == PSF
    std = zarr.open_group(str(out / "uncertainty"), mode="r")["0"][:]
    assert std.shape == hr.shape and np.all(std >= 0) and std.mean() > 0
    # in the input's units: the mean intensity is kept
    assert abs(g["0"][:].mean() - lr.mean()) < 0.05 * lr.mean()


def test_shifting_the_tile_grid_leaves_pixels_unchanged(model, test_image):
    """Tiles of 32 and 48 input pixels (different seams) give the same interior output, up to
    float rounding: the network is local, aligned to a global grid, and the noise is keyed by
    the fine-grid position. (2 sampler steps, so the noise matters.)"""
    d, _, _ = model
    _, lr, store = test_image
    inference = {"steps": 2, "samples": 1}
    a = zarr.open_group(str(run_stage(d, store, 32, inference, "a")[0]), mode="r")["0"][:]
    b = zarr.open_group(str(run_stage(d, store, 48, inference, "b")[0]), mode="r")["0"][:]
    inner = np.s_[:, 24:-24, 24:-24]  # away from the image border (reflect padding differs)
    tol = 1e-4 * float(lr.max() - lr.min())
    assert np.abs(a[inner] - b[inner]).max() < tol


def test_3d_is_slice_wise(model, test_image):
    d, _, norm = model
    _, lr, _ = test_image
    stack = np.stack([lr, lr[:, ::-1], lr[:, :, ::-1]], axis=1)  # (C, Z=3, Y, X)
    store = write_store(d / "lr3d.ome.zarr", stack, {"z": 2.0, "y": 0.5, "x": 0.5})
    out, prov = run_stage(d, store, 32, {"steps": 1, "samples": 1}, "3d")
    ngff.validate(out)
    g = zarr.open_group(str(out), mode="r")
    res = g["0"][:]
    assert res.shape == (2, 3, 128, 128)
    scale = g.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 2.0, 0.25, 0.25]
    # each z plane is the 2D result of that plane (whole-plane call, noise keyed by channel, z)
    den, cfg = load_model(d / "model")
    lrnorm = normalize.Normalizer.from_json(d / "lr-norm.json")
    v = lrnorm.forward(stack)
    for z in range(3):
        keys = [(c * (1 << 20) + z, 0, 0) for c in range(2)]
        m, _ = superres_planes(den, v[:, z], keys, 2, cfg["gain"], {"steps": 1})
        want = lrnorm.inverse(m)
        tol = 1e-4 * float(lr.max() - lr.min())
        assert np.abs(res[:, z, 24:-24, 24:-24] - want[:, 24:-24, 24:-24]).max() < tol
