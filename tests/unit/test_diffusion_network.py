"""UNet, preconditioning, training, checkpoints, local networks, augmentation."""

import json

import numpy as np
import pytest
import torch

from microdiff.diffusion import (
    PositionalNoise,
    augment,
    build,
    edm_loss,
    initial_noise,
    karras_sigmas,
    load_checkpoint,
    load_train_state,
    pick_device,
    read_config,
    sample,
    save_checkpoint,
    train,
)

torch.set_num_threads(1)


def toy_images(n, size=16, seed=0):
    """Toy distribution: one bright disk (random centre and radius) on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(3, size - 3, (2, n, 1, 1))
    r = rng.uniform(2, 4.5, (n, 1, 1))
    img = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r**2, 0.5, -0.5).astype(np.float32)
    return img[:, None]


def tiny(cond_channels=0, dims=2):
    return build(1, cond_channels, width=8, depth=2, dims=dims)


class ToySource:
    data_hash = "toy-disks"

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def sample(self, n, rng):
        self.calls += 1
        if self.fail_at is not None and self.calls > self.fail_at:
            raise KeyboardInterrupt("killed")
        return torch.from_numpy(toy_images(n, seed=int(rng.integers(1 << 31)))), None


def test_unet_shapes_2d_3d_and_cond():
    torch.manual_seed(0)
    d2 = tiny(cond_channels=2)
    x = torch.randn(3, 1, 13, 18)  # not a multiple of 2^(depth-1): padded and cropped
    assert d2(x, torch.tensor([0.1, 1.0, 10.0]), torch.randn(3, 2, 13, 18)).shape == x.shape
    with pytest.raises(ValueError, match="cond"):
        d2(x, 1.0)
    d3 = tiny(dims=3)
    x3 = torch.randn(2, 1, 5, 12, 12)
    assert d3(x3, 0.5).shape == x3.shape
    att = build(2, width=8, depth=3, attention=True)
    assert att(torch.randn(1, 2, 16, 16), 2.0).shape == (1, 2, 16, 16)
    assert pick_device("auto").type in ("cpu", "cuda")


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("dims", [2, 3])
def test_inference_path_gives_the_training_chain_values(local, dims):
    """Without autograd the residual blocks fold norm, scale and shift into one multiply-add
    and run SiLU and the skip sum in place: the same values as the chain training runs."""
    torch.manual_seed(1)
    net = build(2, 1, width=8, depth=2, dims=dims, local=local).net
    with torch.no_grad():
        for q in net.parameters():  # no zero-initialized layers: every path carries values
            q.normal_(0.0, 0.3)
    shape = (2, 2) + (6,) * (dims - 2) + (12, 12)
    x, cond = torch.randn(shape), torch.randn((2, 1) + shape[2:])
    c_noise = torch.tensor([-1.0, 0.5])
    with torch.enable_grad():
        want = net(x, c_noise, cond)
    assert want.requires_grad  # the training chain ran
    with torch.inference_mode():
        got = net(x, c_noise, cond)
    assert want.abs().max() > 0.1
    # float32 rounding of the reordered arithmetic, relative to the outputs' scale
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_preconditioning_limits():
    d = tiny()
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(d(x, 1e-6), x, atol=1e-5, rtol=0)  # tiny sigma: D(x) = x


@pytest.mark.slow
def test_training_lowers_loss_and_sampling_is_repeatable(tmp_path):
    torch.manual_seed(0)
    den = tiny()
    val = torch.from_numpy(toy_images(64, seed=99))

    def val_loss(model):
        with torch.no_grad():
            return float(edm_loss(model, val, None, torch.Generator().manual_seed(1)))

    before = val_loss(den)
    res = train(
        den,
        ToySource(),
        steps=300,
        batch=16,
        lr=2e-3,
        ema=0.99,
        seed=0,
        progress=False,
        checkpoint_path=tmp_path / "m",
        checkpoint_every=0,
    )
    after = val_loss(res.denoiser)
    assert after < 0.6 * before, (before, after)
    assert np.mean(res.losses[-50:]) < np.mean(res.losses[:50])
    # seeded sampling is bitwise repeatable, with a torch.Generator and with PositionalNoise
    sig = karras_sigmas(8)
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(3)
        x = initial_noise(g, (2, 1, 16, 16), float(sig[0]))
        a = sample("dpmpp_2m", res.denoiser, x, sig, generator=g)
        pn = PositionalNoise(3, [(0, 0), (40, 8)])
        x = initial_noise(pn, (2, 1, 16, 16), float(sig[0]))
        b = sample("ddpm", res.denoiser, x, sig, generator=pn)
        outs.append((a, b))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    # the checkpoint holds the EMA weights
    loaded, cfg = load_checkpoint(tmp_path / "m")
    assert cfg["data_hash"] == "toy-disks" and cfg["training"]["steps"] == 300
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(loaded(x, 0.7), res.denoiser(x, 0.7))


def test_checkpoint_round_trip_exact(tmp_path):
    torch.manual_seed(1)
    den = build(2, 1, width=8, depth=2, sigma_data=0.3, blocks_per_level=2)
    with torch.no_grad():
        for p in den.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    cfg = save_checkpoint(tmp_path / "ck", den, {"task": "restore", "data_hash": "abc"})
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["config.json", "weights.pt"]
    back, cfg2 = load_checkpoint(tmp_path / "ck")
    assert cfg2 == cfg == read_config(tmp_path / "ck")
    assert cfg["task"] == "restore" and cfg["sigma_data"] == 0.3 and cfg["params_hash"]
    assert set(cfg) >= {"architecture", "data_hash", "params_hash", "microdiff_version", "created"}
    for k, v in den.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    x, c = torch.randn(1, 2, 8, 8), torch.randn(1, 1, 8, 8)
    assert torch.equal(den(x, 0.5, c), back(x, 0.5, c))


def test_mismatched_checkpoint_fails_clearly(tmp_path):
    save_checkpoint(tmp_path / "ck", tiny())
    cfg_file = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["architecture"]["width"] = 16
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"weights\.pt does not match .*config\.json.*shape"):
        load_checkpoint(tmp_path / "ck")
    # same shapes, other weights: the params hash catches it
    save_checkpoint(tmp_path / "ck2", tiny())
    other = {k: v + 1 for k, v in tiny().state_dict().items()}
    torch.save(other, tmp_path / "ck2" / "weights.pt")
    with pytest.raises(ValueError, match="params_hash"):
        load_checkpoint(tmp_path / "ck2")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "nothing")


def test_killed_training_resumes_to_identical_weights(tmp_path):
    kw = dict(batch=4, lr=1e-3, ema=0.9, seed=5, progress=False, checkpoint_every=3)
    torch.manual_seed(0)
    full = train(tiny(), ToySource(), steps=7, checkpoint_path=tmp_path / "full", **kw)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):  # killed during step 5 (after the step-3 checkpoint)
        train(tiny(), ToySource(fail_at=4), steps=7, checkpoint_path=tmp_path / "cut", **kw)
    assert int(load_train_state(tmp_path / "cut")["step"]) == 3
    torch.manual_seed(123)  # a fresh process would initialise differently; resume overrides it
    resumed = train(
        tiny(), ToySource(), steps=7, checkpoint_path=tmp_path / "cut", resume=True, **kw
    )
    assert resumed.step == 7 and resumed.losses == full.losses
    for a, b in ((full.model, resumed.model), (full.denoiser, resumed.denoiser)):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), k


def test_local_network_loads_local(tmp_path):
    """`local` is an option of the network, recorded in the checkpoint and applied on load;
    configs from before the key take the loader's `local=`."""
    torch.manual_seed(0)
    den = build(1, width=8, depth=2, local=True)
    with torch.no_grad():  # the UNet zero-initialises its last layers: make them matter
        for p in den.parameters():
            p.add_(0.1 * torch.randn_like(p))
    cfg = save_checkpoint(tmp_path / "m", den)
    assert cfg["architecture"]["local"] is True
    back, _ = load_checkpoint(tmp_path / "m")
    x = torch.randn(1, 1, 32, 32)
    whole = back(x, 0.5)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in back.modules())
    assert torch.equal(whole, den(x, 0.5))
    old = json.loads((tmp_path / "m" / "config.json").read_text())
    del old["architecture"]["local"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(old))
    assert torch.equal(load_checkpoint(tmp_path / "m", local=True)[0](x, 0.5), whole)
    assert not torch.equal(load_checkpoint(tmp_path / "m")[0](x, 0.5), whole)


def test_augment_moves_patch_and_condition_together():
    x = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    seen = set()
    for seed in range(40):
        a, c = augment(x, np.random.default_rng(seed), x[:1] * 2)
        assert np.array_equal(c, a[:1] * 2) and a.flags.c_contiguous
        seen.add(a.tobytes())
    assert len(seen) == 8  # the dihedral group of the square
    wide = np.zeros((1, 4, 6))
    assert all(augment(wide, np.random.default_rng(s)).shape == wide.shape for s in range(8))
