"""Restore: noise model, SURE, training, seam-free tiles, 2D/3D stage, CPU, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr

from microdiff import normalize, tiling
from microdiff.diffusion import build, save_checkpoint
from microdiff.io import ngff
from microdiff.restore.denoise import sure_loss, train_denoiser
from microdiff.restore.level import FINE_TUNED_LEVEL, SURE_LEVEL
from microdiff.restore.noise_model import NoiseModel, dither, fit_noise_model, quantization_step
from microdiff.restore.stage import gather_restore, restore_shard
from microdiff.restore.train import train_restore
from microdiff.simulate import simulate_image

TRAINING = {"init": "none", "width": 8, "depth": 2, "steps": 80, "batch": 4, "patch": 32,
            "lr": 1e-2, "p_exact": 0.8, "seed": 0}  # fmt: skip


def poisson_gaussian(clean, a, b, offset, rng):
    """Raw = a * Poisson(clean / a) + offset + N(0, b)."""
    return a * rng.poisson(clean / a) + offset + rng.normal(0, np.sqrt(b), clean.shape)


def test_noise_fit_recovers_gain_and_read_noise():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    clean = 20 + 400 * (0.5 + 0.5 * np.sin(xx / 40.0) * np.cos(yy / 50.0))
    raw = poisson_gaussian(clean, 2.0, 25.0, 100.0, rng)
    model = fit_noise_model([raw[None]], 1)
    # Var = 2 (r - 100) + 25 = 2 r - 175
    assert model.a[0] == pytest.approx(2.0, rel=0.1)
    assert model.b[0] == pytest.approx(-175.0, abs=40.0)
    f = model.forward(raw.astype(np.float32), 0) - model.forward(clean + 100.0, 0)
    assert np.std(f) == pytest.approx(1.0, abs=0.08)
    back = model.inverse(model.forward(np.float32(clean + 100.0), 0), 0)
    assert np.allclose(back, clean + 100.0, rtol=0.02, atol=2.0)


def test_experiment_noise_fit_reads_a_bounded_number_of_patches(monkeypatch):
    """A plate of many fields costs the fit what sixteen do (about 256 patches), and the pooled
    fit still recovers the gain and read noise."""
    from microdiff.restore import noise_fit as restore_train

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:160, :160]
    arrays = []
    for k in range(48):
        clean = 20 + 400 * (0.5 + 0.5 * np.sin(xx / (30.0 + k)) * np.cos(yy / 50.0))
        arrays.append(poisson_gaussian(clean, 2.0, 25.0, 100.0, rng)[None])
    read = []
    real = restore_train.sample_planes
    monkeypatch.setattr(restore_train, "sample_planes",
                        lambda *a: read.append(real(*a)) or read[-1])  # fmt: skip
    model = restore_train.fit_experiment_noise(arrays)
    assert 256 <= len(read[0]) <= 256 + 48  # ceil(256 / 48) = 6 per image, not 16
    assert model.a[0] == pytest.approx(2.0, rel=0.1)
    assert model.b[0] == pytest.approx(-175.0, abs=40.0)
    restore_train.fit_experiment_noise(arrays[:8])
    assert len(read[1]) == 8 * 16  # few images: 16 patches each, as before


def test_sample_planes_reads_a_small_store_whole_with_the_same_patches(tmp_path, monkeypatch):
    """A small stored image is read once, not once per patch: the same patches."""
    import zarr

    from microdiff.restore import noise_fit as restore_train

    data = np.random.default_rng(5).integers(0, 4000, (2, 150, 170)).astype(np.uint16)
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(1, 64, 64),
                            dtype=data.dtype)  # fmt: skip
    arr[...] = data
    whole = restore_train.sample_planes([arr], 5, 48, np.random.default_rng(0))
    monkeypatch.setattr(restore_train, "WHOLE_BYTES", 0)  # per-patch reads, as before
    patches = restore_train.sample_planes([arr], 5, 48, np.random.default_rng(0))
    assert len(whole) == len(patches) == 5
    for (k, a), (j, b) in zip(whole, patches):
        assert k == j and a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_gaussian_only_noise_gives_zero_gain():
    rng = np.random.default_rng(1)
    raw = 50 + rng.normal(0, 3.0, (1, 128, 128))
    model = fit_noise_model([raw], 1)
    assert model.a[0] < 0.05 and model.b[0] == pytest.approx(9.0, rel=0.15)
    assert NoiseModel.from_json(model.to_json()) == model


def test_variance_curve_measures_what_the_gat_leaves_at_low_counts():
    """A few photons per pixel: the GAT's output variance is well below 1 in the dark and near
    1 in the bright; the fitted curve follows the variance measured against the truth."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:256, :256]
    clean = 10 * (0.05 + 0.95 * (0.5 + 0.5 * np.sin(xx / 30.0) * np.cos(yy / 40.0)))
    raw = (rng.poisson(clean) + rng.normal(0, 0.3, clean.shape)).astype(np.float32)
    model = fit_noise_model([raw[None]], 1)
    f = model.forward(raw, 0)
    fc = model.forward(np.float32(clean), 0)
    for lo, hi in ((0.5, 1.0), (8.0, 10.0)):
        sel = (clean >= lo) & (clean < hi)
        true_var = np.var(f[sel] - fc[sel])
        assert float(np.mean(model.gat_variance(fc[sel], 0))) == pytest.approx(true_var, rel=0.3)
    dark, bright = model.gat_variance(np.float32([fc.min(), fc.max()]), 0)
    assert dark < bright - 0.15 and bright > 0.8
    assert NoiseModel.from_json(model.to_json()) == model


def test_integer_data_are_dithered_seam_free_and_the_model_includes_the_dither():
    """Integer camera data: the step is detected, the dither depends on global position only
    (a tile's dither is the crop of the whole image's), is white N(0, 1), and the fitted model
    stabilizes the dithered data's noise (so SURE sees a density, not a grid)."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:256, :256]
    clean = 5 + 60 * (0.5 + 0.5 * np.sin(xx / 30.0) * np.cos(yy / 40.0))
    raw = np.round(rng.poisson(clean) + 3.0 + rng.normal(0, 0.4, clean.shape)).astype(np.uint8)
    assert quantization_step(raw) == 1.0 and quantization_step(raw * 4) == 4.0
    assert quantization_step(raw + 0.5) == 0.0
    whole = dither(raw.shape, (0, 0), 1)
    assert np.array_equal(dither((40, 50), (100, 70), 1), whole[100:140, 70:120])
    assert not np.allclose(dither(raw.shape, (0, 0), 0), whole)
    import microdiff.restore.noise_model as nm

    nm.DITHERS.clear()  # a kept draw is the same bits as a fresh one, and nobody can change it
    fresh = dither((40, 50), (100, 70), 1)
    again = dither((40, 50), (100, 70), 1)
    assert again is fresh and np.array_equal(again, whole[100:140, 70:120])
    with pytest.raises(ValueError):
        again += 1
    assert abs(whole.mean()) < 0.01 and np.var(whole) == pytest.approx(1.0, rel=0.05)
    assert abs(np.corrcoef(whole[:, 1:].ravel(), whole[:, :-1].ravel())[0, 1]) < 0.02
    model = fit_noise_model([raw[None]], 1)
    assert model.step == [1.0] and NoiseModel.from_json(model.to_json()) == model
    dq = model.dequantize(raw, 0, (0, 0))
    assert np.unique(dq).size > 0.9 * raw.size  # no grid left
    sel = clean > 30  # enough photons for the GAT to stabilize
    f = model.forward(dq, 0) - model.forward(np.float32(clean + 3.0), 0)
    assert np.std(f[sel]) == pytest.approx(1.0, abs=0.1)
    assert fit_noise_model([raw[None]], 1, dequantize=False).step is None


def test_heteroscedastic_sure_is_unbiased_and_needs_the_map():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 64, 64, generator=gen).repeat(64, 1, 1, 1)
    std = 0.05 + 0.3 * x  # noise that grows with the signal
    y = x + std * torch.randn(x.shape, generator=gen)
    sigma = torch.full((64,), float(std.pow(2).mean().sqrt()))

    def den(z, t):  # smooths more where the signal (and the noise) is high
        blur = torch.nn.functional.avg_pool2d(z, 3, 1, 1, count_include_pad=False)
        return x * blur + (1 - x) * z

    den.sigma_data = 0.5
    homo = sure_loss(den, y, sigma, None, gen, p_exact=1.0, var=None)
    het = sure_loss(den, y, sigma, None, gen, p_exact=1.0, var=std**2)
    true = sure_loss(den, y, sigma, x, gen, p_exact=1.0)
    assert float(het) == pytest.approx(float(true), rel=0.05)
    assert abs(float(homo) - float(true)) > 0.2 * float(true)


class Blur(torch.nn.Module):
    """A fixed linear denoiser D(z) = w * (3x3 mean of z) + (1 - w) * z."""

    sigma_data = 0.5

    def forward(self, z, t):
        return 0.6 * torch.nn.functional.avg_pool2d(z, 3, 1, 1, count_include_pad=False) + 0.4 * z


def test_sure_is_unbiased_for_the_mse():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 64, 64, generator=gen).repeat(64, 1, 1, 1)
    sigma = torch.full((64,), 0.2)
    y = x + 0.2 * torch.randn(x.shape, generator=gen)
    den = Blur()
    sure = sure_loss(den, y, sigma, None, gen, p_exact=1.0)
    mse = sure_loss(den, y, sigma, x, gen, p_exact=1.0)
    naive = (((den(y, sigma) - y) ** 2).mean() - 0.04) * (0.2**2 + 0.25) / (0.2 * 0.5) ** 2
    assert float(sure) == pytest.approx(float(mse), rel=0.05)
    assert abs(float(naive) - float(mse)) > 0.5 * float(mse)  # without the divergence: biased


def write_raw(path, data, scale):
    """An NGFF raw store like ingest writes (uint16, small chunks)."""
    axes = "czyx" if data.ndim == 4 else "cyx"
    chunks = (1, *([2] if data.ndim == 4 else []), 32, 32)
    g = ngff.create_image(path, data.shape, np.uint16, axes, scale, ["nuclei", "cytoplasm"],
                          chunks=chunks)  # fmt: skip
    g["0"][:] = data
    ngff.fill_pyramid(g)
    return path


@pytest.fixture(scope="module")
def image2d(tmp_path_factory):
    d = tmp_path_factory.mktemp("r2")
    sim = simulate_image((96, 128), photons=30, seed=3)
    raw = write_raw(d / "raw.ome.zarr", sim.noisy, {"y": 0.5, "x": 0.5})
    normalize.compute([raw], (1.0, 99.8), d / "norm.json")
    model = d / "model"
    train_restore([raw], [d / "norm.json"], {"train": True, "training": TRAINING}, model,
                  threads=1, progress=False)  # fmt: skip
    return d, raw, model, sim


def run_stage(d, raw, model, tile, halo=16, samples=1, tag="a", tiles_per_shard=4):
    plan = tiling.plan_tiles(zarr.open_group(str(raw), mode="r")["0"].shape[1:], tile, 4,
                             tiles_per_shard=tiles_per_shard)  # fmt: skip
    params = {"inference": {"halo": halo, "batch": 8, "samples": samples, "seed": 0},
              "superres": {}}  # fmt: skip
    stores = []
    for s in range(tiling.n_shards(plan)):
        stores.append(d / f"shard-{tag}-{s}.zarr")
        restore_shard(raw, plan, s, model, d / "norm.json", params, stores[-1],
                      threads=1, progress=False)  # fmt: skip
    out = d / f"restored-{tag}.ome.zarr"
    prov = gather_restore(raw, plan, stores, model, params, out)
    return out, prov


def test_killed_restore_training_resumes_to_identical_weights(tmp_path):
    """Restore training runs on the engine's loop: checkpoints and exact resume."""

    def source(fail_at=None):
        calls = []

        def sample(n, rng):
            calls.append(1)
            if fail_at is not None and len(calls) > fail_at:
                raise KeyboardInterrupt
            y = torch.from_numpy(rng.normal(0.5, 0.2, (n, 1, 16, 16)).astype(np.float32))
            return y, torch.full((n,), 0.2), None

        return sample

    def run(path, src, resume=False):
        torch.manual_seed(0)
        den = build(1, width=8, depth=2, local=True)
        return train_denoiser(den, src, 6, batch=2, progress=False, checkpoint_path=path,
                              checkpoint_every=2, resume=resume)  # fmt: skip

    full, full_losses = run(tmp_path / "full", source())
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", source(fail_at=3))
    resumed, losses = run(tmp_path / "cut", source(), resume=True)
    assert losses == full_losses
    for (k, v), w in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k


def test_stage_2d_denoises_with_provenance(image2d):
    d, raw, model, sim = image2d
    out, prov = run_stage(d, raw, model, 32, tag="2d")
    ngff.validate(out)
    g = zarr.open_group(str(out), mode="r")
    res = g["0"][:]
    assert res.shape == sim.noisy.shape and res.dtype == np.float32
    assert g.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [
        1.0, 0.5, 0.5]  # fmt: skip
    meta = g.attrs["microdiff"]
    assert meta["stage"] == "restore" and meta["model_hash"] and meta["nfe"] == 1
    assert "SURE" in meta["model_mode"] and meta["noise_model"]["a"][0] > 0
    # a SURE-trained model is evaluated above its noise level, and the output says so
    assert meta["level"]["used"] == meta["level"]["scale"] == SURE_LEVEL
    assert "uncertainty" not in g
    # in raw units, and closer to the clean image than the noisy input is
    err_noisy = np.mean((sim.noisy - sim.clean) ** 2)
    assert abs(res.mean() - sim.noisy.mean()) < 0.05 * sim.noisy.mean()
    assert np.mean((res - sim.clean) ** 2) < 0.5 * err_noisy


def test_shifting_the_tile_grid_leaves_pixels_unchanged(image2d):
    """Seams: tiles of 32 and of 48 pixels (grid edges in different places) give the same
    interior pixels (farther than the halo from the image border, where reflect padding
    differs), up to float rounding: the network is local and aligned to a global grid."""
    d, raw, model, _ = image2d
    a, _ = run_stage(d, raw, model, 32, halo=32, tag="g32")
    b, _ = run_stage(d, raw, model, 48, halo=32, tag="g48", tiles_per_shard=2)
    ra = zarr.open_group(str(a), mode="r")["0"][:, 32:-32, 32:-32]
    rb = zarr.open_group(str(b), mode="r")["0"][:, 32:-32, 32:-32]
    assert np.abs(ra - rb).max() < 1e-3 * np.std(ra)
    # a halo narrower than the receptive field does show the grid
    c, _ = run_stage(d, raw, model, 32, halo=2, tag="h2")
    rc = zarr.open_group(str(c), mode="r")["0"][:, 32:-32, 32:-32]
    assert np.abs(ra - rc).max() > 1e-2 * np.std(ra)


def test_stage_3d_slicewise_with_uncertainty(tmp_path, image2d):
    _, _, model, _ = image2d
    sim = simulate_image((4, 48, 64), photons=30, seed=4)
    raw = write_raw(tmp_path / "raw.ome.zarr", sim.noisy, {"z": 1.0, "y": 0.5, "x": 0.5})
    normalize.compute([raw], (1.0, 99.8), tmp_path / "norm.json")
    out, prov = run_stage(tmp_path, raw, model, 32, samples=3, tag="3d")
    g = zarr.open_group(str(out), mode="r")
    # K = 3 probes around the mean at sigma, plus the output at SURE_LEVEL sigma
    assert g["0"].shape == sim.noisy.shape and prov["nfe"] == 5
    unc = g["uncertainty"]["0"][:]
    ngff.validate(out / "uncertainty")
    assert unc.shape == sim.noisy.shape and np.isfinite(unc).all() and (unc >= 0).all()
    # posterior std is below the raw noise std (denoising) and above zero
    noise_std = np.std(sim.noisy.astype(float) - sim.clean)
    assert 0 < np.median(unc) < noise_std


def test_cpu_fallback_without_cuda(image2d, monkeypatch):
    d, raw, model, _ = image2d
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out, prov = run_stage(d, raw, model, 64, tag="cpu")
    restored = zarr.open_group(str(out), mode="r")["0"][:]
    assert prov["accel"]["device"] == "cpu" and np.isfinite(restored).all()
    assert restored.shape == zarr.open_group(str(raw), mode="r")["0"].shape


def test_shipped_default_used_as_is(tmp_path, image2d):
    d, raw, _, _ = image2d
    den = build(1, width=8, depth=2, local=True)
    default = save_checkpoint(tmp_path / "default", den, {"task": "restore"})
    cfg = train_restore([raw], [d / "norm.json"], {"train": False, "training": TRAINING},
                        tmp_path / "m", progress=False, default=tmp_path / "default")  # fmt: skip
    assert cfg["params_hash"] == default["params_hash"] and cfg["mode"] == "pretrained"
    assert cfg["level"]["scale"] == 1.0  # the shipped default is supervised: Tweedie at sigma
    tuned = train_restore([raw], [d / "norm.json"],
                          {"train": True, "training": {**TRAINING, "init": "default"}},
                          tmp_path / "t", progress=False, default=tmp_path / "default")  # fmt: skip
    assert tuned["init"].startswith("fine-tuned") and tuned["params_hash"] != default["params_hash"]
    assert tuned["level"]["scale"] == FINE_TUNED_LEVEL  # SURE fine-tuning of a supervised model


def test_shipped_default_as_is_without_torch_makes_the_same_model(tmp_path, image2d):
    """restore.pretrained copies the shipped default's files (the train_restore rule without
    training): the same weights file and config as loading and saving it with torch."""
    from microdiff import shipped
    from microdiff.restore import pretrained

    d, raw, _, _ = image2d
    params = {"train": False, "training": TRAINING}
    assert pretrained.copies(params, shipped.RESTORE)
    assert not pretrained.copies({**params, "train": True}, shipped.RESTORE)
    assert not pretrained.copies(params, tmp_path)  # another default: loaded and saved
    args = ([raw, raw], [d / "norm.json"] * 2, params)
    torch_cfg = train_restore(*args, tmp_path / "t", progress=False, default=shipped.RESTORE)
    copy_cfg = pretrained.restore_as_is(*args, tmp_path / "c")
    assert (tmp_path / "c" / "weights.pt").read_bytes() == (
        tmp_path / "t" / "weights.pt"
    ).read_bytes()
    written = [json.loads((tmp_path / m / "config.json").read_text()) for m in "tc"]
    for cfg in (torch_cfg, copy_cfg, *written):
        cfg.pop("created")
    assert copy_cfg == torch_cfg == written[0] == written[1]
