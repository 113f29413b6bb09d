"""The diffusion representation classifier and the bright-background cell segmentation."""

import numpy as np
import pytest
import torch

from microdiff.classify import light
from microdiff.classify import represent as rp
from microdiff.classify.crops import dihedral
from microdiff.metrics import average_precision
from microdiff.segment.bright import BrightParams, segment_bright


@pytest.fixture(scope="module")
def denoiser():
    torch.manual_seed(0)
    return rp.build_denoiser(2, width=8, depth=2).eval()


def test_dihedral_views_are_the_eight_symmetries():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = [dihedral(x, k) for k in range(8)]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(dihedral(dihedral(dihedral(dihedral(x, 1), 1), 1), 1), x)


def test_embedding_does_not_depend_on_the_batch(denoiser, rng):
    crops = rng.normal(0, 0.5, (10, 2, 16, 16)).astype(np.float32)
    whole = rp.embed(denoiser, crops, (0.1, 0.3), batch=10, threads=1)
    single = rp.embed(denoiser, crops[3:4], (0.1, 0.3), batch=1, threads=1)
    np.testing.assert_allclose(whole[3], single[0], rtol=1e-4, atol=1e-5)
    assert whole.shape[0] == 10 and np.isfinite(whole).all()
    blocks = sum(b.conv2.out_channels for b in rp._blocks(denoiser.net))
    assert whole.shape[1] == 2 * blocks * (len(rp.RINGS) + 1)  # 2 levels, 3 rings


def test_eight_views_make_the_embedding_rotation_invariant(denoiser, rng):
    crops = rng.normal(0, 0.5, (4, 2, 16, 16)).astype(np.float32)
    turned = np.ascontiguousarray(np.rot90(crops, 1, axes=(-2, -1)))
    a = rp.embed(denoiser, crops, (0.2,), views=8, threads=1)
    b = rp.embed(denoiser, turned, (0.2,), views=8, threads=1)
    one_a = rp.embed(denoiser, crops, (0.2,), views=1, threads=1)
    one_b = rp.embed(denoiser, turned, (0.2,), views=1, threads=1)
    # the fixed noise draw is not rotated with the crop, so invariance is approximate
    gap8, gap1 = np.abs(a - b).mean(), np.abs(one_a - one_b).mean()
    assert gap8 < 0.5 * gap1


def test_light_classifier_chooses_on_validation_and_separates(rng):
    y = np.repeat(["a", "b"], 60)
    X = rng.normal(0, 1, (120, 5)) + (y == "b")[:, None] * np.array([3.0, 0, 0, 0, 0])
    val = np.zeros(120, bool)
    val[::4] = True
    model, choice = light.fit_light(X, y, val)
    assert choice["validation_f1_macro"] > 0.9 and choice["model"] in ("logistic", "svm")
    assert (model.predict(X) == y).mean() > 0.9


def test_joined_fills_missing_features_with_the_median():
    E = np.zeros((3, 2))
    F = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])
    J = light.joined(E, F)
    assert J.shape == (3, 4) and np.isfinite(J).all()
    assert J[0, 3] == 5.0 and J[2, 2] == 2.0


def test_representation_separates_simulated_phenotypes(rng):
    """Crops of two shapes (round vs elongated blobs): a briefly trained representation plus
    the light classifier tells them apart on objects it did not fit."""
    yy, xx = np.mgrid[:16, :16] - 7.5
    crops, y = [], []
    for i in range(80):
        elongated = i % 2 == 1
        a, b = (6.0, 2.0) if elongated else (3.5, 3.5)
        t = rng.uniform(0, np.pi)
        u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
        blob = ((u / a) ** 2 + (v / b) ** 2 < 1).astype(np.float32)
        crops.append(np.stack([blob * 1.6 - 0.8, blob * 0.5]) + rng.normal(0, 0.1, (2, 16, 16)))
        y.append("elongated" if elongated else "round")
    crops, y = np.asarray(crops, np.float32), np.asarray(y)
    res = rp.train_representation(crops, steps=60, batch=16, width=8, depth=2, threads=1)
    E = rp.embed(res.denoiser, crops, threads=1)
    test = np.arange(80) >= 60
    val = np.zeros(60, bool)
    val[::3] = True
    model, _ = light.fit_light(E[~test], y[~test], val)
    assert (model.predict(E[test]) == y[test]).mean() >= 0.85


def test_bright_background_cells_are_found(rng):
    """Dark, pale-centred discs on a bright field (a blood smear's red cells)."""
    truth = np.zeros((128, 128), np.int32)
    yy, xx = np.mgrid[:128, :128]
    centres = [(24, 24), (24, 70), (70, 30), (90, 95), (40, 105), (104, 56)]
    for i, (cy, cx) in enumerate(centres, 1):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 < 11**2] = i
    rgb = np.full((3, 128, 128), 220.0)
    disc = truth > 0  # the whole disc darker, its centre paler
    for c, depth in zip(range(3), (60.0, 110.0, 70.0)):
        rgb[c][disc] -= depth
    for cy, cx in centres:
        rgb[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 4**2] += 40.0
    rgb += rng.normal(0, 4, rgb.shape)
    labels = segment_bright(rgb.astype(np.float32), BrightParams(min_size=40, min_radius=4.0))
    assert len(np.unique(labels)) - 1 == len(centres)
    assert average_precision(truth, labels, [0.5])[0] >= 0.9
    assert (labels[truth == 0] == 0).mean() > 0.97


def test_diffusion_method_picks_the_module():
    from microdiff.classify import diffusion_method, lowest_error

    assert (
        diffusion_method({}) is rp and diffusion_method({"method": "lowest_error"}) is lowest_error
    )
    with pytest.raises(ValueError, match="classify.diffusion.method"):
        diffusion_method({"method": "nope"})


def test_ring_profile_sees_a_central_pallor():
    """A disc with a pale centre and a uniform disc differ in their inner rings only."""
    from microdiff.classify.crops import ring_profile

    yy, xx = np.mgrid[:16, :16] - 7.5
    r = np.hypot(yy, xx)
    full = np.where(r < 6, -1.0, 1.0)
    pale = np.where(r < 2, 0.5, full)
    prof = ring_profile(np.stack([full, pale])[:, None].astype(np.float32), width=2)
    assert prof.shape == (2, 4)
    assert (prof[0, :3] == -1.0).all() and prof[0, 3] == 1.0  # inside the disc, outside
    assert prof[1, 0] == 0.5 and prof[0, 0] == -1.0
    np.testing.assert_allclose(prof[0, 1:], prof[1, 1:])
    # channels interleave ring by ring: (ring 0: c0, c1), (ring 1: c0, c1), ...
    two = ring_profile(np.stack([full, pale])[None].astype(np.float32), width=2)
    np.testing.assert_allclose(two[0, :2], [prof[0, 0], prof[1, 0]])


def test_class_weights_power_between_none_and_balanced():
    y = np.array(["a"] * 8 + ["b"] * 2)
    bal, half = light.class_weights(y, 1.0), light.class_weights(y, 0.5)
    assert np.allclose(np.bincount(y == "b", weights=bal), [5, 5])  # balanced: equal totals
    assert np.allclose(light.class_weights(y, 0.0), 1.0)
    assert 1 < half[-1] < bal[-1] and bal[0] < half[0] < 1


def test_rings_keep_where_an_activation_is():
    # a bright centre and a bright rim have the same crop mean but not the same rings
    yy, xx = np.mgrid[:16, :16] - 7.5
    r = np.hypot(yy, xx) / 8
    centre = torch.as_tensor((r < 0.3).astype(np.float32))[None, None]
    rim = torch.as_tensor((r > 0.8).astype(np.float32))[None, None] * centre.sum() / (r > 0.8).sum()
    assert torch.isclose(centre.mean(), rim.mean())
    a, b = rp.ring_pool(centre)[0], rp.ring_pool(rim)[0]
    assert a[0] > 0.5 and (a[1:] == 0).all() and (b[:2] == 0).all() and b[2] > 0
    np.testing.assert_allclose(rp.ring_pool(dihedral(centre, 3)), rp.ring_pool(centre), atol=1e-6)


def test_rings_of_small_maps_are_finite():
    for size in (1, 2, 4):
        pooled = rp.ring_pool(torch.ones(2, 3, size, size))
        assert pooled.shape == (2, 3 * (len(rp.RINGS) + 1)) and torch.isfinite(pooled).all()


@pytest.mark.parametrize("embedding_wins", [True, False])
def test_objects_are_embedded_only_once_the_embedding_is_chosen(monkeypatch, embedding_wins):
    """The with/without-embedding choice needs the embedding of the objects the light
    classifier learns from; the held-out and unlabelled objects are embedded only when the
    embedding is used (a Chula smear has 3x more objects than labels)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from microdiff.classify import crops as crops_module

    rng = np.random.default_rng(0)
    n = 48
    table = pd.DataFrame({"sample": np.repeat(["s1", "s2", "s3", "s4"], 12), "kind": "nucleus",
                          "id": np.tile(np.arange(1, 13), 4), "area_px": rng.uniform(40, 90, n),
                          "intensity_mean_0": rng.uniform(0, 1, n)})  # fmt: skip
    labelled = table.groupby("sample").head(8)  # 4 of each sample's 12 objects are unlabelled
    labels = labelled[["sample", "id"]].assign(**{"class": np.tile(["a", "b"], 16)})
    heldout = [["s4", int(i)] for i in labelled.loc[labelled["sample"] == "s4", "id"]]
    monkeypatch.setattr(
        rp, "load_representation", lambda *a, **k: (None, {"crop_size": 8, "heldout": heldout})
    )
    monkeypatch.setattr(
        crops_module, "experiment_crops",
        lambda rows, *a: rng.normal(size=(len(rows), 1, 8, 8)).astype(np.float32),
    )  # fmt: skip
    seen = []

    def embed(den, crops, *a, **k):
        seen.append(len(crops))
        return np.ones((len(crops), 3), np.float32)

    widths = []

    def fit_light(X, y, val, **k):  # first called with the embedding joined, then without
        widths.append(X.shape[1])
        win = (len(widths) == 1) == embedding_wins
        model = LogisticRegression(max_iter=1000).fit(X, y)
        return model, {"model": "logistic", "validation_f1_macro": 0.9 if win else 0.5}

    monkeypatch.setattr(rp, "embed", embed)
    monkeypatch.setattr(rp, "fit_light", fit_light)
    result, info = rp.classify_experiment(table, labels, {}, {}, "ckpt", {"join": True})
    fitted = 32 - len(heldout)
    assert widths[0] == widths[1] + 3  # the same objects, with and without the embedding
    assert seen[0] == fitted  # first the objects the light classifier learns from
    assert info["embedding_used"] is embedding_wins and len(result) == n
    if embedding_wins:
        assert seen == [fitted, n - fitted] and info["n_embedded"] == n
    else:
        assert seen == [fitted] and info["n_embedded"] == fitted
