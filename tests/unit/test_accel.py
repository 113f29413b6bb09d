"""The inference accelerator on a CPU: channels-last, autocast, batch from free memory, caching."""

import numpy as np
import pytest
import torch

from microdiff.diffusion import Denoiser, accel, build


@pytest.fixture(autouse=True)
def default_settings():
    accel.configure(None)
    yield
    accel.configure(None)


def small(cond: int = 0, seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    den = build(1, cond, width=8, depth=2).eval()
    for p in den.parameters():  # the UNet zero-initialises its last layers: make them matter
        torch.nn.init.normal_(p, std=0.2)
    return den


def test_channels_last_gives_the_contiguous_output():
    den = small(cond=1)
    x, c = torch.randn(2, 1, 24, 24), torch.randn(2, 1, 24, 24)
    with torch.no_grad():
        ref = den(x, torch.tensor([0.5, 2.0]), c)
        fast = accel.prepare(den, "cpu", channels_last=True)
        out = fast(x, torch.tensor([0.5, 2.0]), c)
    assert isinstance(fast.net, accel.Accelerated)
    assert den.net.inp.weight.is_contiguous(memory_format=torch.channels_last)
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert ref.abs().mean() > 0.1
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_cpu_path_ignores_the_gpu_settings():
    accel.configure({"bf16": True, "channels_last": True, "compile": True})
    den = small()
    fast = accel.prepare(den, "cpu")  # channels-last, fp32, eager: whatever the gpu section says
    assert fast.net.format == torch.channels_last and not fast.net.bf16 and not fast.net.compiled
    assert accel.options("cpu") == accel.CPU
    assert accel.options("cpu") == {"bf16": False, "channels_last": True, "compile": False}
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, 0.5), den(x, 0.5), atol=1e-5, rtol=1e-4)
    assert accel.options("cuda") == {"bf16": True, "channels_last": True, "compile": True}
    accel.configure({"compile": False})
    assert accel.options("cuda") == {"bf16": True, "channels_last": True, "compile": False}
    assert accel.options("cpu", bf16=True)["bf16"] is False  # bf16 only on CUDA
    with pytest.raises(ValueError, match="unknown gpu settings"):
        accel.configure({"fp8": True})


def test_autocast_is_a_noop_on_cpu():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with accel.autocast("cpu", bf16=True):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ b).dtype == torch.float32


def test_prepare_is_cached_and_idempotent():
    den = small()
    fast = accel.prepare(den, "cpu", channels_last=True)
    assert accel.prepare(den, "cpu", channels_last=True) is fast
    assert accel.prepare(fast, "cpu") is fast
    assert fast.net.multiple == den.net.multiple and fast.net.config == den.net.config


def test_failed_compile_falls_back_to_eager():
    den = small()
    x = torch.randn(1, 1, 16, 16)
    fast = accel.prepare(den, "cpu", channels_last=True)

    def broken(*args):
        raise RuntimeError("no compiler")

    fast.net.compiled = broken
    with torch.no_grad():
        out, ref = fast(x, 1.0), den(x, 1.0)
    assert fast.net.compiled is None
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_auto_batch_fits_the_free_memory():
    gib = 1 << 30
    n = accel.auto_batch("cuda", per_item=100 << 20, default=4, free_bytes=8 * gib)
    assert n == 40 and n * (100 << 20) <= 0.5 * 8 * gib
    assert accel.auto_batch("cuda", 100 << 20, 4, free_bytes=1 << 20) == 1
    assert accel.auto_batch("cuda", 1, 4, free_bytes=8 * gib, most=64) == 64
    assert accel.auto_batch("cpu", 100 << 20, default=4) == 4


def test_batch_size_setting():
    def never():
        raise AssertionError("a CPU never measures")

    assert accel.batch_size("auto", "cpu", never, default=16) == 16
    assert accel.batch_size(None, "cpu", never, default=3) == 3
    assert accel.batch_size(8, "cuda", never, default=16) == 8
    with pytest.raises(ValueError):
        accel.batch_size(0, "cpu", never, default=16)


def test_item_bytes_grows_with_the_tile():
    den = small(cond=1)
    a = accel.item_bytes(den, (1, 32, 32), (1, 32, 32))
    b = accel.item_bytes(den, (1, 64, 64), (1, 64, 64))
    assert a > 8 * 32 * 32 * 4  # at least one full-resolution feature map of width 8
    assert 3.5 < b / a < 4.5
    free = 64 * a
    n = accel.auto_batch("cuda", a, 4, free_bytes=free)
    assert n == 32 and n * a <= free


def test_to_device_on_cpu():
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = accel.to_device(arr, "cpu")
    assert t.dtype == torch.float32 and t.device.type == "cpu"
    np.testing.assert_array_equal(t.numpy(), arr)


def test_stage_batch_helpers_on_cpu():
    from microdiff.restore.denoise import plane_batch
    from microdiff.segment.model import Model, tile_batch

    den = small()
    assert plane_batch(den, "auto", (64, 64), "cpu") == accel.CPU_BATCH == 1
    assert plane_batch(den, 5, (64, 64), "cpu") == 5
    model = Model(small(cond=1), ("nuclei",), 1)
    assert tile_batch(model, "auto", (64, 64), pad=8) == accel.CPU_BATCH


def test_other_denoisers_run_as_they_are():
    class Oracle(torch.nn.Module):
        def forward(self, x, sigma, cond=None):
            return x * 0

    oracle = Oracle()
    assert accel.prepare(oracle, "cpu", channels_last=True) is oracle


def test_stages_take_batch_auto(tmp_path):
    """restore and segment shard jobs accept batch "auto" (on a CPU: one item per call)."""
    import zarr

    from microdiff import normalize, simulate
    from microdiff.io import ngff
    from microdiff.restore.stage import DEFAULT_MODEL, restore_image
    from microdiff.segment.stage import segment_shard
    from microdiff.tiling import plan_store

    sim = simulate.simulate_image((64, 96), seed=1)
    raw = tmp_path / "raw.ome.zarr"
    group = ngff.create_image(raw, sim.noisy.shape, sim.noisy.dtype, "cyx", {"y": 1, "x": 1},
                              list(sim.channels))  # fmt: skip
    group["0"][:] = sim.noisy
    ngff.fill_pyramid(group)
    norm = tmp_path / "norm.json"
    normalize.compute([raw], out_path=norm)
    outs = []
    for batch in ("auto", 16):
        out = tmp_path / f"restored-{batch}.ome.zarr"
        params = {"inference": {"halo": 16, "batch": batch, "samples": 1, "seed": 0}}
        restore_image(raw, norm, DEFAULT_MODEL, out, params, tile=32, progress=False)
        outs.append(np.asarray(zarr.open_group(str(out), mode="r")["0"]))
    # one plane per call or 16: the same network, summed in another order by the kernels
    assert np.abs(outs[0] - outs[1]).max() <= 1e-4 * np.abs(outs[1]).max()
    plain = {"device": "cpu", "name": "cpu", **accel.CPU}
    prov = zarr.open_group(str(out), mode="r").attrs["microdiff"]
    assert prov["accel"] == plain  # provenance says how the network ran
    plan = plan_store(raw, 32, 16, tiles_per_shard=1 << 30)
    params = {"samples": 1, "steps": 1, "sampler": "ddim", "kinds": ["nuclei"]}
    info = segment_shard(raw, plan, 0, tmp_path / "seg.zarr", None, norm, params, "auto")
    shard = zarr.open_array(str(tmp_path / "seg.zarr"), mode="r")
    assert info["tiles"] == len(plan) and np.isfinite(shard[:]).all() and shard[0].std() > 0
    assert shard.attrs["segment"]["accel"] == plain
