"""The inference accelerator on CUDA: bf16 + channels-last against fp32 for the shipped restore
and segment models, the automatic batch on the real card, pinned transfers, torch.compile."""

import numpy as np
import pytest
import torch

from microdiff import simulate
from microdiff.diffusion import accel
from microdiff.normalize import percentile_norm
from microdiff.restore.denoise import denoise_v, plane_batch, to_v, vst_range
from microdiff.restore.noise_model import NoiseModel
from microdiff.restore.stage import DEFAULT_MODEL as RESTORE_MODEL
from microdiff.restore.stage import load_model
from microdiff.segment.inputs import DEFAULT_MODEL as SEGMENT_MODEL
from microdiff.segment.model import Model, predict, shard_channels, tile_batch

FP32 = {"bf16": False, "channels_last": False, "compile": False}
FAST = {"bf16": True, "channels_last": True, "compile": False}


@pytest.fixture(autouse=True)
def default_settings():
    accel.configure(None)
    yield
    accel.configure(None)


@pytest.fixture(scope="module")
def image():
    return simulate.simulate_image((256, 256), seed=3).noisy.astype(np.float32)


def restore_input(image, cfg):
    noise = NoiseModel.from_json(cfg["noise"])
    low = np.percentile(image, 1, axis=(1, 2))
    high = np.percentile(image, 99.8, axis=(1, 2))
    f_lo, f_hi, sigma = vst_range(noise, low, high)
    return to_v(image, noise, f_lo, f_hi)[None], sigma


def test_restore_bf16_channels_last_matches_fp32(cuda, image):
    outs = []
    for opts in (FP32, FAST):
        accel.configure(opts)
        den, cfg = load_model(RESTORE_MODEL)
        v, sigma = restore_input(image, cfg)
        mean, _ = denoise_v(den, v, sigma, [(0, 0)], device=cuda)
        outs.append(mean)
    ref, fast = outs
    err = np.sqrt(np.mean((fast - ref) ** 2)) / ref.std()
    assert err < 0.03, err


def test_segment_bf16_channels_last_matches_fp32(cuda, image):
    cond = percentile_norm(image[:1])[None]
    probs = []
    for opts in (FP32, FAST):
        accel.configure(opts)
        model = Model.load(SEGMENT_MODEL, device=str(cuda))
        s = predict(model, cond, [(0, 0)], samples=2, steps=2, pad=32)
        probs.append(shard_channels(s)[0, 0])
    ref, fast = probs
    assert np.abs(fast - ref).mean() < 0.05
    assert ((fast > 0.5) == (ref > 0.5)).mean() > 0.97
    assert 0.02 < (ref > 0.5).mean() < 0.9  # the image has nuclei and background


def test_auto_batch_fits_the_card(cuda):
    den, _ = load_model(RESTORE_MODEL)
    n = plane_batch(den, "auto", (576, 576), cuda)
    free, _ = torch.cuda.mem_get_info(cuda)
    assert 1 <= n <= 64
    torch.cuda.reset_peak_memory_stats(cuda)
    before = torch.cuda.memory_allocated(cuda)
    v = np.random.default_rng(0).random((n, 1, 576, 576), dtype=np.float32)
    mean, _ = denoise_v(den, v, [0.1], [(0, 0)] * n, batch=n, device=cuda)
    assert np.isfinite(mean).all()
    assert torch.cuda.max_memory_allocated(cuda) - before < 0.6 * free
    model = Model.load(SEGMENT_MODEL, device=str(cuda))
    assert 1 <= tile_batch(model, "auto", (576, 576), pad=32) <= 16


def test_pinned_transfer(cuda):
    arr = np.random.default_rng(1).random((4, 1, 512, 512)).astype(np.float32)
    t = accel.to_device(arr, cuda)
    assert t.is_cuda and t.dtype == torch.float32
    np.testing.assert_array_equal(t.cpu().numpy(), arr)


def test_compiled_network_matches_eager(cuda):
    den, _ = load_model(RESTORE_MODEL)
    x = torch.randn(4, 1, 128, 128, device=cuda) * 0.3 + 0.5
    eager = accel.prepare(den, cuda, bf16=False, channels_last=True, compile=False)
    fast = accel.prepare(den, cuda, bf16=False, channels_last=True, compile=True)
    assert fast is not eager
    with torch.no_grad():
        a, b = eager(x, 0.1), fast(x, 0.1)
    assert fast.net.compiled is not None  # compiled, not the eager fallback
    torch.testing.assert_close(b, a, atol=2e-3, rtol=2e-3)
