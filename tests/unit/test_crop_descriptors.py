"""Crop and table descriptors the light classifier joins to the embedding, and its SVM."""

import numpy as np
import pandas as pd

from microdiff.classify import light
from microdiff.classify.crops import relative_descriptors, scaled_profile


def _disc(size: int, radius: float, pallor: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    r = np.hypot(yy, xx)
    img = np.where(r < radius, -1.0, 1.0)
    return np.where(r < pallor * radius, 0.5, img).astype(np.float32)


def test_scaled_profile_reads_the_same_for_a_cell_twice_as_large():
    small, large = _disc(32, 6, 0.4), _disc(32, 12, 0.4)
    prof = scaled_profile(np.stack([small, large])[:, None], np.array([6.0, 12.0]))
    assert prof.shape == (2, 9)
    assert prof[0, 0] == prof[1, 0] == 0.5  # the pallor, at the same fraction of the radius
    inner = [0, 1, 3, 4, 5, 7, 8]  # rings away from the pallor's and the rim's pixel steps
    np.testing.assert_allclose(prof[0, inner], prof[1, inner])
    # channels interleave ring by ring, as in ring_profile
    two = scaled_profile(np.stack([small, large])[None], np.array([6.0]))
    np.testing.assert_allclose(
        two[0, :2], [prof[0, 0], scaled_profile(large[None, None], [6.0])[0, 0]]
    )


def test_scaled_profile_leaves_rings_outside_the_crop_at_zero():
    prof = scaled_profile(_disc(8, 3, 0.0)[None, None], np.array([20.0]))
    assert prof[0, -1] == 0.0 and prof[0, 0] == -1.0


def test_relative_descriptors_make_size_relative_to_the_sample():
    """The same cell is large in a smear of small cells and small in one of large cells."""
    table = pd.DataFrame({
        "sample": ["a"] * 4 + ["b"] * 4,
        "area_px": [100.0, 100, 100, 200, 400, 400, 400, 200],
        "perimeter_px": [36.0, 36, 36, 50, 72, 72, 72, 50],
        "intensity_mean_r": [1.0, 1, 1, 2, 4, 4, 4, 2],
        "axis_major_px": [12.0, 12, 12, 16, 24, 24, 24, 16],
        "axis_minor_px": [10.0, 10, 10, 16, 20, 20, 20, 16],
    })  # fmt: skip
    d = relative_descriptors(table)
    assert d.shape == (8, 4 + 1 + 2)  # 4 sizes, 1 intensity, roundness, axis ratio
    assert d[3, 0] == 2.0 and d[7, 0] == 0.5  # area over the sample's median
    assert d[3, 4] == 2.0 and d[7, 4] == 0.5  # intensity likewise
    np.testing.assert_allclose(d[0, 5], 4 * np.pi * 100 / 36**2)
    np.testing.assert_allclose(d[0, 6], 10 / 12)


def test_relative_descriptors_ignore_fragments_in_the_typical_size():
    table = pd.DataFrame({"sample": ["a"] * 5, "area_px": [1.0, 2, 100, 100, 100]})
    d = relative_descriptors(table)
    assert d.shape == (5, 1) and d[2, 0] == 1.0


def test_light_classifier_takes_the_svm_where_classes_are_not_linear(rng):
    """A ring around a blob: no line separates them, an RBF machine does."""
    n = 300
    ang, rad = rng.uniform(0, 2 * np.pi, n), np.where(np.arange(n) < n // 2, 0.5, 3.0)
    X = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1) + rng.normal(0, 0.2, (n, 2))
    y = np.where(np.arange(n) < n // 2, "in", "out")
    val = np.zeros(n, bool)
    val[::3] = True
    model, choice = light.fit_light(X, y, val, probability=True)
    assert choice["model"] == "svm" and choice["validation_f1_macro"] > 0.95
    assert model.predict_proba(X).shape == (n, 2)
    _, only = light.fit_light(X, y, val, svm_cs=())
    assert only["model"] == "logistic" and only["validation_f1_macro"] < 0.8


def test_boundary_shape_sees_a_tail_and_spicules():
    from microdiff.classify.crops import boundary_shape

    yy, xx = np.mgrid[:32, :32] - 15.5
    r, theta = np.hypot(yy, xx), np.arctan2(yy, xx)
    disc = np.where(r < 8, -1.0, 1.0)
    tail = np.where((r < 8) | ((np.abs(yy) < 1.5) & (xx > 0) & (xx < 14)), -1.0, 1.0)
    burr = np.where(r < 8 + 2.5 * (np.cos(12 * theta) > 0.5), -1.0, 1.0)
    d = boundary_shape(np.stack([disc, tail, burr])[:, None].astype(np.float32), np.full(3, 8.0))
    assert d.shape == (3, 5 + 8)
    assert abs(d[0, 0] - 1.0) < 0.1 and d[0, 1] < 0.05  # a disc: r = radius on every ray
    assert d[1, 5] > 5 * d[0, 5]  # the tail: first harmonic
    assert d[2, 4] > 3 * d[0, 4] and d[2, 4] > d[1, 4]  # spicules: jumps between rays


def test_rim_spectrum_sees_spicules_a_boundary_misses():
    """A disc whose rim carries 12 small spicules: the rim's 9-13 cycles-per-turn band rises well
    above a smooth disc's, inside the disc nothing changes, and a quarter turn changes little."""
    from microdiff.classify.crops import RIM_BANDS, RIM_FRACTIONS, rim_spectrum

    yy, xx = np.mgrid[:32, :32] - 15.5
    r, theta = np.hypot(yy, xx), np.arctan2(yy, xx)
    disc = np.where(r < 8, 0.2, 1.0)
    burr = np.where(r < 8 + 1.5 * (np.cos(12 * theta) > 0), 0.2, 1.0)
    crops = np.stack([disc, burr, np.rot90(burr)])[:, None].astype(np.float32)
    d = rim_spectrum(crops, np.full(3, 8.0)).reshape(3, len(RIM_BANDS) - 1, len(RIM_FRACTIONS))
    band = next(i for i, lo in enumerate(RIM_BANDS[:-1]) if lo <= 12 < RIM_BANDS[i + 1])
    at_rim = RIM_FRACTIONS.index(1.1)
    assert d[1, band, at_rim] > d[0, band, at_rim] + 1.0  # log energy: e-fold and more
    inside = RIM_FRACTIONS.index(0.7)
    np.testing.assert_allclose(d[1, :, inside], d[0, :, inside], atol=0.2)
    np.testing.assert_allclose(d[2], d[1], atol=0.3)


def test_boundary_shape_reads_bright_objects_negated():
    from microdiff.classify.crops import boundary_shape

    yy, xx = np.mgrid[:32, :32] - 15.5
    tail = np.where((np.hypot(yy, xx) < 8) | ((np.abs(yy) < 1.5) & (xx > 0) & (xx < 14)), -1.0, 1.0)
    crops = np.stack([tail, tail])[:, None].astype(np.float32)
    dark = boundary_shape(crops, np.full(2, 8.0))
    np.testing.assert_allclose(boundary_shape(-crops, np.full(2, 8.0)), dark)
    assert not np.allclose(boundary_shape(-crops, np.full(2, 8.0), dark=True), dark)


def test_light_classifier_probabilities_with_rare_classes(rng):
    X = rng.normal(0, 1, (40, 3))
    y = np.array(["a"] * 36 + ["b"] * 2 + ["c"] * 2)
    X[y == "b"] += 4
    X[y == "c"] -= 4
    val = np.zeros(40, bool)
    val[:10] = True
    model, _ = light.fit_light(X, y, val, probability=True)  # 2-fold calibration
    assert model.predict_proba(X).shape == (40, 3)
    y1 = np.array(["a"] * 39 + ["b"])
    model, choice = light.fit_light(X, y1, val, probability=True)
    assert choice["model"] == "logistic" and model.predict_proba(X).shape == (40, 2)
