"""Samplers, schedules, noise and guidance against analytic optimal denoisers."""

import math

import numpy as np
import pytest
import torch

from microdiff.diffusion import (
    DPS,
    SAMPLERS,
    Blur,
    Compose,
    Downsample,
    GaussianDenoiser,
    GaussianMixtureDenoiser,
    Mask,
    PositionalNoise,
    ddim_invert,
    ddpm_alphas_bar,
    ddpm_sigmas,
    ddpm_timesteps,
    initial_noise,
    karras_sigmas,
    nfe,
    sample,
    sigmas_from,
    ve_sigmas,
)
from microdiff.kept import Kept

torch.set_num_threads(1)

GAUSS = GaussianDenoiser([1.0, -0.5], [0.5, 2.0])
MIX = GaussianMixtureDenoiser([0.3, 0.7], [[-1.5, 0.0], [1.5, 1.0]], [[0.3, 0.5], [0.4, 0.2]])
N = 20000

# Steps per sampler ("moderate") and tolerances. Errors: |mean - mu| (Euclidean) and
# |cov - Sigma|_F / |Sigma|_F. Sampling error alone at N = 20000 is about 0.01 (mean) and
# 0.015 (cov). First-order stochastic samplers with a mean-only denoiser under-disperse at coarse
# steps (they ignore Var[x0 | x_t]), so they get 100 steps and a looser covariance tolerance.
CASES = {
    "ddpm": (100, {}, 0.05, 0.15),
    "ddim": (100, {"eta": 0.0}, 0.05, 0.08),
    "euler_maruyama": (100, {"sde": "ve"}, 0.08, 0.15),
    "pc": (100, {"sde": "ve"}, 0.08, 0.12),
    "heun": (25, {}, 0.05, 0.06),
    "dpmpp_2m": (25, {}, 0.05, 0.07),
}
# variants: sampler, options, steps, mean and covariance tolerances
EXTRA = {
    "euler_maruyama_vp": ("euler_maruyama", {"sde": "vp"}, 100, 0.08, 0.15),
    "pc_vp": ("pc", {"sde": "vp"}, 100, 0.08, 0.12),
    "ddim_eta1": ("ddim", {"eta": 1.0}, 100, 0.05, 0.15),
    "heun_churn": ("heun", {"s_churn": 10.0}, 50, 0.05, 0.10),  # stochastic: slower to converge
}


def _errors(target, out):
    m, c = target.moments()
    out = out.double()
    return (out.mean(0) - m).norm().item(), ((torch.cov(out.T) - c).norm() / c.norm()).item()


def _run(target, name, steps, opts, seed=0, n=N):
    """Start from the exact noisy marginal p_sigma_max so only the sampler's error is measured."""
    sig = karras_sigmas(steps)
    g = torch.Generator().manual_seed(seed)
    x = target.sample(n, g) + initial_noise(g, (n, 2), float(sig[0]))
    return sample(name, target, x, sig, generator=g, **opts)


@pytest.mark.parametrize("target", [GAUSS, MIX], ids=["gauss", "mixture"])
@pytest.mark.parametrize("name", sorted(CASES) + sorted(EXTRA))
def test_sampler_reproduces_target_moments(target, name):
    if name in EXTRA:
        base, opts, steps, tol_m, tol_c = EXTRA[name]
    else:
        base = name
        steps, opts, tol_m, tol_c = CASES[name]
    em, ec = _errors(target, _run(target, base, steps, opts))
    print(f"{name}: steps {steps} mean err {em:.3f} (tol {tol_m}), cov err {ec:.3f} (tol {tol_c})")
    assert em < tol_m and ec < tol_c, f"{name}: mean err {em:.3f}, cov err {ec:.3f}"


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_error_falls_with_steps(name):
    opts = CASES[name][1]
    coarse = _errors(MIX, _run(MIX, name, 5, opts, n=4000))[1]
    fine = _errors(MIX, _run(MIX, name, 60, opts, n=4000))[1]
    assert fine < coarse


def test_schedule_endpoints():
    s = karras_sigmas(18, sigma_min=0.002, sigma_max=80.0)
    assert (
        len(s) == 19 and float(s[0]) == pytest.approx(80.0) and float(s[-2]) == pytest.approx(0.002)
    )
    assert float(s[-1]) == 0.0 and bool((s[1:] < s[:-1]).all())
    v = ve_sigmas(10, 0.01, 50.0)
    assert float(v[0]) == pytest.approx(50.0) and float(v[-2]) == pytest.approx(0.01)
    assert float(v[-1]) == 0.0
    for steps in (1, 2, 10, 50, 999, 1000):
        t = ddpm_timesteps(steps, 1000)
        assert len(t) == len(set(t.tolist())) == steps
        assert t[0] == 999 and (steps == 1 or t[-1] == 0)
    for kind in ("linear", "cosine"):
        ab = ddpm_alphas_bar(1000, kind)
        s = ddpm_sigmas(10, 1000, kind)
        assert float(s[0]) == pytest.approx(math.sqrt((1 - ab[999]) / ab[999]))
        assert float(s[-2]) == pytest.approx(math.sqrt((1 - ab[0]) / ab[0]))
        assert float(s[-1]) == 0.0 and bool((s[1:] < s[:-1]).all())


def test_sigmas_from_and_sdedit():
    s = karras_sigmas(20)
    t = sigmas_from(s, 1.0)
    assert float(t[0]) == 1.0 and float(t[-1]) == 0.0 and bool((t[1:] < t[:-1]).all())
    assert bool((t[1:] < 1.0).all())
    # SDEdit from a low level keeps the image close to the start (Gaussian: shrinks toward mu)
    g = torch.Generator().manual_seed(1)
    x_init = GAUSS.sample(2000, g)
    out = sample(
        "heun", GAUSS, x_init + 0.05 * torch.randn(x_init.shape, generator=g), sigmas_from(s, 0.05)
    )
    assert (out - x_init).abs().mean() < 0.05


def test_nfe_matches_counted_calls():
    calls = []

    def counting(x, sigma, cond=None):
        calls.append(1)
        return GAUSS(x, sigma, cond)

    for name in SAMPLERS:
        for sig in (karras_sigmas(7), karras_sigmas(7)[:-1]):
            calls.clear()
            x = torch.randn(4, 2) * float(sig[0])
            sample(name, counting, x, sig, generator=torch.Generator().manual_seed(0))
            assert len(calls) == nfe(name, sig), name
    assert (
        nfe("heun", 10) == 19 and nfe("pc", 10, corrector_steps=2) == 28 and nfe("ddim", 10) == 10
    )


def test_ddim_eta0_deterministic_and_inversion_round_trip():
    sig = karras_sigmas(50, sigma_min=0.05, sigma_max=20.0)[:-1]
    x_t = torch.randn(500, 2, generator=torch.Generator().manual_seed(3)) * 20.0
    a = sample("ddim", MIX, x_t, sig, generator=torch.Generator().manual_seed(1))
    b = sample("ddim", MIX, x_t, sig, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)  # eta = 0 never draws noise
    back = ddim_invert(MIX, a, sig, fixed_point_iters=10)
    assert ((back - x_t).norm() / x_t.norm()).item() < 1e-4
    rough = ddim_invert(MIX, a, sig)  # the usual explicit inversion: close, not exact
    assert ((rough - x_t).norm() / x_t.norm()).item() < 0.15


def test_ddpm_equals_ddim_eta1():
    sig = karras_sigmas(40)
    x = torch.randn(3000, 2, generator=torch.Generator().manual_seed(0)) * float(sig[0])
    # pathwise: the same noise gives the same sample (the two are one Markov chain)
    a = sample("ddpm", MIX, x, sig, generator=torch.Generator().manual_seed(5))
    b = sample("ddim", MIX, x, sig, generator=torch.Generator().manual_seed(5), eta=1.0)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # in distribution with independent noise: two-sample KS statistic on each coordinate
    c = sample("ddim", MIX, x, sig, generator=torch.Generator().manual_seed(6), eta=1.0)
    for k in range(2):
        u, v = np.sort(a[:, k].numpy()), np.sort(c[:, k].numpy())
        grid = np.concatenate([u, v])
        ks = np.abs(np.searchsorted(u, grid, "right") - np.searchsorted(v, grid, "right")).max()
        assert ks / len(u) < 1.95 * math.sqrt(2 / len(u))  # alpha = 0.001


def test_torch_generator_sampling_is_repeatable():
    sig = karras_sigmas(10)
    for name in SAMPLERS:
        out = [
            sample(name, MIX, torch.ones(8, 2) * 3, sig, generator=torch.Generator().manual_seed(4))
            for _ in range(2)
        ]
        assert torch.equal(out[0], out[1]), name


def test_positional_noise_independent_of_tile_grid():
    like = torch.empty(2, 3, 20, 24)
    a = PositionalNoise(7, [(0, 0), (100, 50)]).draw(like, 5)
    b = PositionalNoise(7, [(8, 10), (90, 40)]).draw(like, 5)
    # overlap of tile (0,0)+[20,24] and (8,10)+[20,24] is global [8:20, 10:24]
    assert torch.equal(a[0, :, 8:20, 10:24], b[0, :, 0:12, 0:14])
    assert torch.equal(a[1, :, 0:10, 0:14], b[1, :, 10:20, 10:24])
    # tiles starting on odd pixels of the last axis (pixels share hashes in pairs), alone and
    # beside an even one in a batch
    odd = PositionalNoise(7, [(8, 11), (90, 41)]).draw(like, 5)
    assert torch.equal(a[0, :, 8:20, 11:24], odd[0, :, 0:12, 0:13])
    assert torch.equal(a[1, :, 0:10, 0:15], odd[1, :, 10:20, 9:24])
    mixed = PositionalNoise(7, [(8, 11), (90, 40)]).draw(like, 5)
    assert torch.equal(mixed[0], odd[0]) and torch.equal(mixed[1], b[1])
    narrow = PositionalNoise(7, [(3, 5)]).draw(torch.empty(1, 3, 4, 1), 5)
    assert torch.equal(narrow[0], a[0, :, 3:7, 5:6])
    assert not torch.equal(a, PositionalNoise(8, [(0, 0), (100, 50)]).draw(like, 5))
    assert not torch.equal(a, PositionalNoise(7, [(0, 0), (100, 50)]).draw(like, 6))
    assert not torch.equal(a[:, 0], a[:, 1])  # channels differ
    v = PositionalNoise(0, [(0, 0, 0)]).draw(torch.empty(1, 1, 16, 64, 64), 0).flatten()
    assert abs(v.mean()) < 0.02 and abs(v.std() - 1) < 0.02
    assert abs(torch.corrcoef(torch.stack([v[1:], v[:-1]]))[0, 1]) < 0.02


def test_positional_noise_kept_draws_are_the_same_bits_and_the_callers_own(monkeypatch):
    from microdiff.diffusion import noise

    monkeypatch.setattr(noise, "KEPT", Kept(64 << 20, largest=16 << 20))
    like, pn = torch.empty(2, 3, 20, 24), PositionalNoise(7, [(0, 0), (100, 50)])
    a = pn.draw(like, 5)
    noise.KEPT.clear()
    fresh = pn.draw(like, 5)  # computed again, then kept
    kept = PositionalNoise(7, [(0, 0), (100, 50)]).draw(like, 5)
    assert torch.equal(a, fresh) and torch.equal(a, kept) and len(noise.KEPT) == 1
    kept.add_(1.0)  # a caller changing its draw changes no later one
    assert torch.equal(pn.draw(like, 5), a)
    assert not torch.equal(pn.draw(like, 6), a)  # another counter: another draw
    monkeypatch.setattr(noise, "KEPT", Kept(4 * a.nbytes, largest=a.nbytes))
    for counter in range(10):  # bounded: the least recently used go
        pn.draw(like, counter)
    assert len(noise.KEPT) == 4  # each draw a quarter of the bound
    assert pn.draw(torch.empty(2, 3, 40, 24), 0) is not None and len(noise.KEPT) == 4  # too large


def test_positional_noise_makes_tiled_sampling_seam_free():
    """Two overlapping tiles sampled separately agree on their overlap (pixelwise denoiser)."""
    den = GaussianDenoiser(torch.zeros(1, 1, 1), torch.ones(1, 1, 1))
    sig = karras_sigmas(8)

    def run(origin):
        pn = PositionalNoise(11, [origin])
        x = initial_noise(pn, (1, 1, 16, 16), float(sig[0]))
        return sample("pc", den, x, sig, generator=pn)

    a, b = run((0, 0)), run((4, 6))
    torch.testing.assert_close(a[..., 4:, 6:], b[..., :12, :10], rtol=0, atol=1e-5)


def test_operators_shapes():
    x = torch.randn(2, 3, 16, 20)
    psf = torch.ones(5, 5) / 25
    assert Blur(psf)(x).shape == x.shape
    assert Downsample(2)(x).shape == (2, 3, 8, 10)
    assert Mask(torch.rand(16, 20) > 0.5)(x).shape == x.shape
    assert Compose(Blur(psf), Downsample(4))(x).shape == (2, 3, 4, 5)
    x3 = torch.randn(1, 2, 8, 8, 8)
    assert Blur(torch.ones(3, 3, 3) / 27)(x3).shape == x3.shape
    assert Downsample((1, 2, 2))(x3).shape == (1, 2, 8, 4, 4)
    torch.testing.assert_close(Blur(psf)(torch.ones(1, 1, 9, 9)), torch.ones(1, 1, 9, 9))
    with pytest.raises(ValueError):
        Blur(torch.ones(4, 4))


@pytest.mark.parametrize(
    "op",
    [Downsample(2), Blur(torch.ones(3, 3) / 9), Mask((torch.rand(8, 8) > 0.5).float())],
    ids=["downsample", "blur", "mask"],
)
def test_dps_moves_sample_toward_measurement(op):
    prior = GaussianDenoiser(torch.zeros(1, 8, 8), torch.ones(1, 8, 8))
    g = torch.Generator().manual_seed(0)
    truth = prior.sample(16, g)
    y = op(truth)
    sig = karras_sigmas(30, sigma_max=20.0)
    x = initial_noise(g, truth.shape, float(sig[0]))
    free = sample("dpmpp_2m", prior, x, sig)
    guided = sample("dpmpp_2m", prior, x, sig, guidance=DPS(op, y, zeta=0.5, normalize=False))
    r_free = (op(free) - y).norm() / y.norm()
    r_guided = (op(guided) - y).norm() / y.norm()
    assert r_guided < 0.5 * r_free
    assert (guided - truth).norm() < (free - truth).norm()


@pytest.mark.parametrize(
    "origins, spatial",
    [([(0, 0), (-40, 7), (2**31 - 5, -(2**31))], (9, 13)), ([(-3, 5, 1000)], (4, 6, 5))],
)
def test_positional_noise_cpu_hash_equals_the_tensor_hash(origins, spatial):
    """The CPU path (uint32 numpy, in place) and the int64 tensor path (other devices) give the
    same bits, so a GPU run draws the noise a CPU run draws; negative and 32-bit-edge coordinates
    wrap alike."""
    from microdiff.diffusion.noise import _hash_torch
    from microdiff.positional import hashes

    for counter in (-1, 0, 63):
        cpu = hashes(11, counter, range(3), origins, spatial)
        ref = _hash_torch(11, counter, 3, origins, spatial, torch.device("cpu"))
        assert cpu.shape == tuple(ref.shape)
        assert np.array_equal(cpu.astype(np.int64), ref.numpy())


@pytest.mark.parametrize("block", [None, 10, 25])
def test_positional_noise_device_path_equals_the_cpu_path(block, monkeypatch):
    """Off the CPU, `PositionalNoise` runs the hash in int64 tensors and Box-Muller in torch; run
    on CPU tensors here, that path gives the CPU path's normals (to float32 rounding), odd and
    even starts alike, and whatever rows the CPU path makes in one block (10 pixels: one row of
    the 10-pixel pair grid a block; 25: two rows, the last block one)."""
    from microdiff import positional
    from microdiff.diffusion.noise import KEPT, _box_muller, _hash_torch

    if block:
        monkeypatch.setattr(positional, "BLOCK", block)
    KEPT.clear()
    origins, spatial = [(0, 3), (5, 8), (-7, -1)], (5, 9)
    grown, grid, odd = positional.pair_grid(origins, spatial)
    h = _hash_torch(3, 5, 2, grown, grid, torch.device("cpu"))
    device_path = _box_muller(h, odd, spatial[-1], torch.float32)
    cpu = torch.from_numpy(positional.normals(3, 5, range(2), origins, spatial))
    torch.testing.assert_close(device_path, cpu, rtol=0, atol=1e-5)
    assert torch.equal(PositionalNoise(3, origins).draw(torch.empty(3, 2, *spatial), 5), cpu)
