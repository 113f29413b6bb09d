"""Segment stage library: representation, instance extraction, stitching over tiles, stable ids,
per-object consistency, training and K-sample inference on CPU."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from microdiff.metrics import average_precision, match
from microdiff.segment.instances import (
    Params,
    Reference,
    Window,
    best_iou,
    consistency,
    doubled,
    extract,
    extract_unordered,
    halved,
    stitch,
)
from microdiff.segment.model import (
    SIGMA_MAX,
    Model,
    build,
    predict,
    shard_channels,
    train_model,
    widened,
)
from microdiff.segment.represent import representation
from microdiff.simulate import simulate_image
from microdiff.tiling import iter_tiles, plan_tiles


def perfect_reader(labels):
    r = (representation(labels) + 1) / 2

    def read(box):
        sl = box.slices
        return Window(r[0][sl], np.zeros_like(r[0][sl]), r[1][sl], [(r[0][sl], r[1][sl])] * 2)

    return read


LEVEL = Params(threshold=0.5, seed_level=0.5, seed_h=0.0, smooth=0.0)  # fixed-level seeds


def run_stitch(labels, tile, halo=48, p=LEVEL):
    plan = plan_tiles(labels.shape, tile=tile, halo=0)
    cores = [c for _, c, _ in iter_tiles(plan)]
    out = np.zeros(labels.shape, np.int32)
    facts = stitch(perfect_reader(labels), cores, labels.shape, out, halo=halo, p=p)
    return out, facts


def disc(shape, centers, radius):
    lab = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i, (cy, cx) in enumerate(centers, 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return lab


def test_representation_separates_touching_objects():
    lab = disc((40, 60), [(20, 18), (20, 39)], 11)  # two discs that touch
    r = representation(lab)
    assert r.shape == (2, 40, 60) and r.min() == -1 and r.max() == 1
    assert r[0][lab > 0].min() == 1 and r[0][lab == 0].max() == -1
    border = (lab[:, 28:31] > 0).any()
    assert border and r[1][20, 28:31].max() < 0  # low distance where they meet
    pred, anchors = extract((r[0] + 1) / 2, (r[1] + 1) / 2)
    assert pred.max() == 2 and len(anchors) == 2
    assert average_precision(lab, pred, [0.9])[0] == 1.0


def test_objects_across_tile_borders_are_neither_split_nor_duplicated():
    # discs centred on tile borders and on a corner where four tiles meet (tiles of 32)
    centers = [(32, 20), (10, 64), (32, 64), (64, 90), (50, 32), (70, 40)]
    lab = disc((96, 128), centers, 7)
    out, facts = run_stitch(lab, tile=32, halo=24)
    assert out.max() == len(centers) == len(facts["anchor"])
    m = match(lab, out, 0.95)
    assert m["tp"] == len(centers) and m["fp"] == 0 and m["fn"] == 0


def test_tiled_equals_untiled_on_a_crowded_image():
    lab = simulate_image((200, 232), density=600, seed=3).nuclei
    tiled, ft = run_stitch(lab, tile=40)
    whole, fw = run_stitch(lab, tile=256)
    assert tiled.max() == whole.max() == len(np.unique(lab)) - 1
    m = match(whole, tiled, 0.95)
    assert m["tp"] == whole.max() and m["fp"] == 0
    # ids come from anchors in raster order: identical whatever the tiling
    assert np.array_equal(tiled, whole) or all(a == b for a, b, _ in m["pairs"])
    assert np.array_equal(ft["anchor"], fw["anchor"])
    # the default h-maxima seeds (on smoothed distance) stitch alike (they may split a
    # non-convex simulated nucleus even on perfect maps: the count is not checked here)
    tiled, ft = run_stitch(lab, tile=40, p=Params())
    whole, fw = run_stitch(lab, tile=256, p=Params())
    assert tiled.max() == whole.max() >= len(np.unique(lab)) - 1
    assert match(whole, tiled, 0.95)["tp"] == whole.max()
    assert np.array_equal(ft["anchor"], fw["anchor"])


def test_ids_are_stable_and_ordered_by_anchor():
    lab = simulate_image((128, 128), seed=5).nuclei
    a, fa = run_stitch(lab, tile=32)
    b, _ = run_stitch(lab, tile=32)
    assert np.array_equal(a, b)
    flat = np.ravel_multi_index(fa["anchor"].T, lab.shape)
    assert np.all(np.diff(flat) > 0)


def test_consistency_counts_samples_that_reproduce_an_object():
    lab = disc((40, 80), [(20, 20), (20, 60)], 8)
    r = (representation(lab) + 1) / 2
    only_first = (representation(np.where(lab == 1, 1, 0)) + 1) / 2
    c = consistency(lab, 2, [(r[0], r[1]), (only_first[0], only_first[1])], Params())
    assert c.tolist() == [1.0, 0.5]
    assert best_iou(lab, np.zeros_like(lab), 2).tolist() == [0.0, 0.0]


def test_best_iou_is_each_objects_largest_overlap_over_union(rng):
    """Against the IoU of every pair of objects counted pixel by pixel; objects absent from
    the reference (id 4 of 5) and from the other image get 0."""
    a = ndi.label(rng.random((30, 40)) > 0.55)[0]
    b = ndi.label(rng.random((30, 40)) > 0.5)[0]
    a[a == 4] = 0
    n = int(a.max()) + 1  # one id beyond the largest: absent
    want = np.zeros(n)
    for i in range(1, n + 1):
        for j in range(1, int(b.max()) + 1):
            inter = np.sum((a == i) & (b == j))
            if inter:
                want[i - 1] = max(want[i - 1], inter / np.sum((a == i) | (b == j)))
    assert want[3] == 0 and want[-1] == 0 and want.max() > 0.3
    assert np.allclose(best_iou(a, b, n), want)
    ref = Reference(a, n)  # one reference, several images, as `consistency` compares them
    for other in (b, np.zeros_like(b), a):
        assert np.allclose(ref.best_iou(other), best_iou(a, other, n))
    assert ref.best_iou(a).tolist() == [float(np.any(a == i)) for i in range(1, n + 1)]


def test_half_resolution_grid_round_trips(rng):
    a = rng.random((3, 5, 7)).astype(np.float32)
    fine = np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)
    assert np.allclose(halved(fine), a)
    assert np.allclose(halved(fine[..., :-1, :-1]), a)  # an odd edge: its last row repeated
    lab = rng.integers(0, 4, (5, 7))
    assert np.array_equal(halved(doubled(lab, (9, 13)))[:4, :6], lab[:4, :6])
    assert doubled(lab, (9, 13)).shape == (9, 13)


def test_half_resolution_consistency_agrees_with_full_resolution(rng):
    """Samples' objects are extracted on the half-resolution grid: an exact sample reproduces
    every object, and on samples that split, merge and lose objects (smooth noise on both
    maps) the per-object consistency is within one sample of the full-resolution one."""
    sim = simulate_image((256, 256), density=900, seed=11)
    r = (representation(sim.nuclei) + 1) / 2
    p = Params()
    lab, anchor = extract(r[0], r[1], p)
    n = len(anchor)
    assert consistency(lab, n, [(r[0], r[1])], p).tolist() == [1.0] * n

    def noisy(a):
        return np.clip(a + ndi.gaussian_filter(rng.standard_normal(a.shape), 2) * 2.8, 0, 1)

    samples = [(noisy(r[0]), noisy(r[1])) for _ in range(4)]
    full = np.zeros(n)
    for fg, dist in samples:
        full += best_iou(lab, extract_unordered(fg, dist, p), n) > p.match_iou
    full /= 4
    half = consistency(lab, n, samples, p)
    assert n > 40 and np.sum(full < 1) >= 10  # the samples disagree on many objects
    assert np.all(np.abs(half - full) <= 0.25) and np.mean(np.abs(half - full)) <= 0.1
    assert np.array_equal(consistency(lab, n, samples, replace(p, consistency_grid=1)), full)


def test_unordered_extraction_has_the_objects_of_extract(rng):
    """`consistency` takes each sample's objects without ids in anchor order: the same objects,
    so the same IoUs with any reference."""
    sim = simulate_image((96, 128), density=800, seed=3)
    r = (representation(sim.nuclei) + 1) / 2
    for p in (Params(), Params(seed_h=0.0), Params(min_size=60)):
        fg = np.clip(r[0] + 0.2 * rng.standard_normal(r[0].shape), 0, 1)
        lab, anchor = extract(fg, r[1], p)
        other = extract_unordered(fg, r[1], p)
        assert np.array_equal(other > 0, lab > 0) and len(np.unique(other)) == len(anchor) + 1
        pairs = np.unique(np.stack([lab.ravel(), other.ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
        n = int(sim.nuclei.max())
        assert np.array_equal(best_iou(sim.nuclei, lab, n), best_iou(sim.nuclei, other, n))


class Oracle(torch.nn.Module):
    """A pointwise stand-in denoiser: the target is a function of the condition at each pixel."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, sigma, cond=None):
        c = cond[:, :1]
        fg = torch.tanh((c - 0.3) * 20)
        return torch.cat([fg, 2 * c.clamp(0, 1) - 1], 1) + 0.01 * torch.tanh(x)


def test_predict_samples_shapes_2d_and_3d_and_seam_free_noise():
    model = Model(Oracle(), ("nuclei",), 1)
    cond = np.random.default_rng(0).random((2, 1, 16, 24)).astype(np.float32)
    s = predict(model, cond, [(0, 0), (0, 8)], samples=3, steps=2)
    assert s.shape == (2, 3, 2, 16, 24) and np.abs(s).max() <= 1
    assert not np.allclose(s[0, 0], s[0, 1])  # samples differ
    # tile 1 starts 8 pixels right of tile 0: overlapping pixels get identical samples
    cond[1, :, :, :16] = cond[0, :, :, 8:]
    s = predict(model, cond, [(0, 0), (0, 8)], samples=2, steps=2)
    assert np.allclose(s[1, :, :, :, :16], s[0, :, :, :, 8:], atol=1e-6)
    padded = predict(model, cond, [(0, 0), (0, 8)], samples=2, steps=2, pad=4)
    assert padded.shape == s.shape and np.allclose(padded[..., 4:-4, 4:-4], s[..., 4:-4, 4:-4])
    m = shard_channels(s)
    assert m.shape == (2, 3 + 2 * 2, 16, 24) and (m[:, 1] >= 0).all()
    assert np.array_equal(m[:, 3:5], (s[:, :, 0] + 1) / 2)
    s3 = predict(model, np.random.rand(1, 1, 3, 16, 16).astype(np.float32), [(0, 0, 0)], 2, 2)
    assert s3.shape == (1, 2, 2, 3, 16, 16)


def test_shard_channels_are_the_rescaled_samples_and_their_statistics():
    # a cropped (non-contiguous) view of two kinds' samples, as predict(pad=...) returns them
    full = np.random.default_rng(3).uniform(-1, 1, (2, 4, 4, 20, 28)).astype(np.float32)
    s = full[..., 2:-2, 2:-2]
    m = shard_channels(s)
    # the same channels from two models' samples (a nuclei model's, then a cell model's)
    assert np.array_equal(shard_channels(s[:, :, :2], s[:, :, 2:]), m)
    u = (s + 1.0) / 2.0
    for i in range(2):
        base, fg, dist = i * 11, u[:, :, 2 * i], u[:, :, 2 * i + 1]
        assert np.array_equal(m[:, base], fg.mean(1))
        assert np.array_equal(m[:, base + 1], fg.std(1))
        assert np.array_equal(m[:, base + 2], dist.mean(1))
        assert np.array_equal(m[:, base + 3 : base + 7], fg)
        assert np.array_equal(m[:, base + 7 : base + 11], dist)


@pytest.mark.filterwarnings("ignore")
def test_training_writes_a_loadable_checkpoint(tmp_path):
    sim = simulate_image((64, 96), seed=2, channels=("nuclei",))
    img = sim.noisy.astype(np.float32)  # (1, Y, X)
    img = (img - img.min()) / (img.max() - img.min())
    res = train_model(
        [img],
        [[sim.nuclei]],
        tmp_path / "m",
        steps=3,
        batch=2,
        patch=32,
        width=8,
        depth=2,
        threads=1,
    )
    assert len(res.losses) == 3 and np.isfinite(res.losses).all()
    model = Model.load(tmp_path / "m", device="cpu")  # CPU fallback: no CUDA needed
    assert model.kinds == ("nuclei",) and model.cond_channels == 1
    s = predict(model, img[None, :, :32, :32], [(0, 0)], samples=2, steps=2)
    assert s.shape == (1, 2, 2, 32, 32)
    assert model.sigma_max == SIGMA_MAX  # no start recorded: the stage's default
    # the training objects' median size, for segment.scale: auto
    area = np.bincount(sim.nuclei.ravel())[1:]
    assert model.diameter == pytest.approx(np.sqrt(4 * np.median(area[area > 0]) / np.pi), abs=0.01)
    assert model.diameter_range[0] <= model.diameter <= model.diameter_range[1]
    train_model([img], [[sim.nuclei]], tmp_path / "m20", steps=1, batch=2, patch=32, width=8,
                depth=2, threads=1, sigma_max=20.0)  # fmt: skip
    m20 = Model.load(tmp_path / "m20", device="cpu")
    assert m20.sigma_max == 20.0
    a = predict(m20, img[None, :, :32, :32], [(0, 0)], samples=1, steps=1)
    b = predict(m20, img[None, :, :32, :32], [(0, 0)], samples=1, steps=1, sigma_max=20.0)
    c = predict(m20, img[None, :, :32, :32], [(0, 0)], samples=1, steps=1, sigma_max=SIGMA_MAX)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    with pytest.raises(ValueError, match="not a segment checkpoint"):
        from microdiff.diffusion import save_checkpoint

        save_checkpoint(tmp_path / "other", build(), {"task": "restore"})
        Model.load(tmp_path / "other")


def test_a_new_condition_channel_starts_at_zero_weight(tmp_path):
    """Fine-tuning from a model with fewer condition channels (the cell model gaining the
    nuclei found): step 0 computes the old model's function, whatever the new channel holds."""
    old = build(("cells",), 2, width=8, depth=2)
    torch.manual_seed(0)
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.1)
    new = build(("cells",), 3, width=8, depth=2)
    new.load_state_dict(widened(old.state_dict(), new))
    x, sigma = torch.randn(2, 2, 16, 16), torch.tensor([0.5, 3.0])
    cond = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        want = old(x, sigma, cond[:, :2])
        assert torch.allclose(new(x, sigma, cond), want, atol=1e-6)
        assert not torch.allclose(want, old(x, sigma, torch.rand(2, 2, 16, 16)))
    with pytest.raises(ValueError, match="cannot start"):
        old.load_state_dict(widened(new.state_dict(), old))


def test_zoom_augmentation_rescales_objects_alike_in_image_and_target(rng):
    """PairSource's zoom: a square of patch / factor pixels resampled to the patch, so objects
    grow by the factor in the condition and in the target together."""
    from scipy import ndimage as ndi
    from skimage.segmentation import clear_border

    from microdiff.segment.represent import PairSource

    yy, xx = np.mgrid[:160, :160]
    lab = np.zeros((160, 160), np.int32)
    for i, (cy, cx) in enumerate([(c, d) for c in range(16, 160, 32) for d in range(16, 160, 32)]):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 6**2] = i + 1
    img = (lab > 0).astype(np.float32)[None]
    area = {}
    for zoom in (1.0, 2.0):
        src = PairSource([img], [[lab]], patch=64, scale=(zoom, zoom), noise=0.01)
        t, c = src.sample(16, rng)
        fg = t[:, 0].numpy() > 0
        assert ((c[:, 0].numpy() > 0.5) == fg).mean() > 0.97  # image and target stay aligned
        whole = [clear_border(ndi.label(f)[0]) for f in fg]  # objects inside the patch
        area[zoom] = np.mean([np.bincount(w.ravel())[1:][np.bincount(w.ravel())[1:] > 0].mean()
                              for w in whole if w.any()])  # fmt: skip
    assert 100 < area[1.0] < 130  # pi * 6**2 = 113
    assert 3.5 < area[2.0] / area[1.0] < 4.5
