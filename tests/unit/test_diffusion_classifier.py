import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from microdiff.classify import crops as cropping
from microdiff.classify import lowest_error as dc
from microdiff.normalize import Normalizer
from microdiff.simulate import simulate_image


class PointMasses(nn.Module):
    """The exact denoiser of data that is one fixed image per class: D(x, s, c) = mu_c."""

    def __init__(self, means: torch.Tensor):
        super().__init__()
        self.means = means  # (K, C, H, W)

    def forward(self, x, sigma, cond):
        k = cond[:, :, 0, 0].argmax(1)
        return self.means[k]


def test_crops_centre_pad_and_3d_plane():
    img = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    crops = cropping.object_crops(img, [[4.4, 5.6], [0, 0]], size=4)
    assert crops.shape == (2, 2, 4, 4)
    np.testing.assert_array_equal(crops[0, 1], img[1, 2:6, 4:8])  # centre (4, 6), rounded
    assert crops[1, 0, 0, 0] == img[0, 0, 0] and crops[1, 0, 3, 3] == img[0, 1, 1]  # edge pad
    vol = np.stack([img, img + 1000], axis=1)  # (C, Z=2, Y, X)
    crops3 = cropping.object_crops(vol, [[0.9, 4, 6]], size=4)
    np.testing.assert_array_equal(crops3[0, 0], vol[0, 1, 2:6, 4:8])
    norm = cropping.object_crops(img, [[4, 6]], 4, Normalizer([0, 0], [img.max()] * 2))
    assert norm.min() >= -1 and norm.max() <= 1


def test_exact_denoiser_classifies_perfectly_and_noise_is_shared():
    rng = np.random.default_rng(0)
    means = torch.as_tensor(rng.normal(size=(3, 1, 8, 8)), dtype=torch.float32)
    den = PointMasses(means)
    y = np.array([0, 1, 2, 2, 1, 0, 0])
    crops = means.numpy()[y]
    err = dc.denoising_errors(den, crops, 3, trials=2, seed=3, batch=6)
    # the true class is denoised exactly; the others are off by |mu_j - mu_k|^2 / sigma^2
    assert np.allclose(err[np.arange(len(y)), y], 0)
    assert (err.argmin(axis=1) == y).all()
    again = dc.denoising_errors(den, crops, 3, trials=2, seed=3, batch=300)
    np.testing.assert_allclose(err, again, rtol=1e-6)  # independent of batching
    out, info = dc.classify_crops(den, crops, ["a", "b", "c"], calibration=(crops, y))
    assert list(out["class"]) == list(np.array(["a", "b", "c"])[y])
    assert np.allclose(out[["prob_a", "prob_b", "prob_c"]].sum(axis=1), 1)
    assert info["nfe_per_object"] == 3 * 8 * 2


def test_class_prior_decides_where_the_errors_cannot():
    den = PointMasses(torch.zeros(2, 1, 8, 8))  # two classes that look alike
    crops = np.zeros((4, 1, 8, 8), np.float32)
    cal = (crops, np.array([1, 1, 1, 0]))
    out, info = dc.classify_crops(den, crops, ["a", "b"], calibration=cal, class_counts=[1, 30])
    assert set(out["class"]) == {"b"} and info["prior"] == "class counts"
    np.testing.assert_allclose(out["prob_b"], 31 / 33)  # the add-one smoothed prior itself
    flat, info = dc.classify_crops(den, crops, ["a", "b"])
    assert np.allclose(flat["prob_a"], 0.5) and info["prior"] == "uniform"
    np.testing.assert_allclose(dc.log_prior([0, 2], 2), np.log([0.25, 0.75]))


def test_temperature_fits_confidence():
    y = np.array([0, 1] * 50)
    errors = np.where(np.eye(2)[y] > 0, 1.0, 2.0)
    errors[:10] = errors[:10, ::-1]  # 10 % wrong: the fit must not be overconfident
    t = dc.calibrate_temperature(errors, y)
    p = dc.probabilities(errors, t)
    assert 0.85 < p[10:, :].max(axis=1).mean() < 0.95


def test_holdout_split_by_group_and_stratified():
    groups = np.repeat(["a", "b", "c", "d"], 5)
    y = np.tile([0, 1, 0, 1, 1], 4)
    train, test = cropping.holdout_split(groups, y, 0.25, seed=0)
    assert test.sum() == 5 and len(set(groups[test])) == 1 and not (train & test).any()
    train1, test1 = cropping.holdout_split(np.zeros(20), y, 0.25, seed=0)
    assert test1.sum() == 2 + 3 and set(y[test1]) == {0, 1}


def _sim_crops(seed):
    sim = simulate_image((160, 160), n_cells=40, classes=2, size=0.5, seed=seed)
    img = sim.noisy.astype(np.float32)
    norm = Normalizer(np.percentile(img, 1, (1, 2)), np.percentile(img, 99.8, (1, 2)))
    cen = sim.objects[["centroid_y", "centroid_x"]].to_numpy()
    return cropping.object_crops(img, cen, 16, norm), sim.objects["class_name"].to_numpy()


def test_trained_on_simulator_crops_beats_chance_and_checkpoint_roundtrip(tmp_path):
    X, y = _sim_crops(1)
    Xt, yt = _sim_crops(2)
    classes = ["round", "elongated"]
    res = dc.train_classifier(
        X, y, classes, steps=150, batch=32, width=8, depth=2, seed=0,
        checkpoint_path=tmp_path / "model", threads=1,
    )  # fmt: skip
    assert np.mean(res.losses[-20:]) < np.mean(res.losses[:20])
    den, cfg = dc.load_classifier(tmp_path / "model")
    assert cfg["classes"] == classes and cfg["crop_size"] == 16
    kw = dict(sigmas=dc.noise_levels(6, 0.05, 1.0), trials=1, seed=0)
    out, _ = dc.classify_crops(den, Xt, classes, **kw)
    acc = (out["class"].to_numpy() == yt).mean()
    assert acc > 0.8, acc
    # same checkpoint, same seed: the same answer
    out2, _ = dc.classify_crops(den, Xt, classes, **kw)
    pd.testing.assert_frame_equal(out, out2)
    with pytest.raises(ValueError, match="not a classify-diffusion checkpoint"):
        from microdiff.diffusion import build, save_checkpoint

        save_checkpoint(tmp_path / "other", build(width=8, depth=1), {"task": "x"})
        dc.load_classifier(tmp_path / "other")
