"""The fallback cells of a nuclei-only model: whole cells grown from their nuclei."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from microdiff.metrics import average_precision
from microdiff.segment import cells
from microdiff.segment.inputs import NormalizedChannels
from microdiff.segment.instances import Params, best_iou, cell_hits, cells_from, fill_holes, reach
from microdiff.simulate import simulate_image
from microdiff.tiling import Box


class Norm:
    def __init__(self, image):
        lo, hi = np.percentile(image, [1, 99.8])
        self.low, self.high = np.array([lo]), np.array([hi])


def fallback(sim, max_distance=50.0, tile=128):
    cyto = sim.noisy[1:2].astype(np.float32)
    source = NormalizedChannels(cyto, [0], Norm(cyto))
    Y, X = cyto.shape[1:]
    cores = [Box((y, x), (min(y + tile, Y), min(x + tile, X)))
             for y in range(0, Y, tile) for x in range(0, X, tile)]  # fmt: skip
    t = cells.image_threshold(source, cores)
    whole = Box((0, 0), (Y, X))
    w = cells.fallback_window(source, whole, sim.nuclei, t["threshold"])
    return cells_from(w.prob, w.dist, sim.nuclei, Params(cell_max_distance=max_distance)), t


def test_fallback_cells_match_the_simulated_cells():
    sim = simulate_image((384, 384), seed=3, photons=30)
    lab, t = fallback(sim)
    assert t["background"] < t["threshold"] < t["otsu"]
    assert average_precision(sim.cells, lab)[0] >= 0.7
    # the old fixed 0.15 (normalized) sits on this background: most of the image was "cell"
    assert t["background"] > 0.1 and (lab > 0).mean() < 1.2 * (sim.cells > 0).mean()


def test_every_cell_holds_its_nucleus_is_whole_and_capped():
    sim = simulate_image((256, 256), seed=5, photons=30)
    lab, _ = fallback(sim, max_distance=12.0)
    ids = np.unique(sim.nuclei[sim.nuclei > 0])
    assert set(np.unique(lab[lab > 0])) == set(ids)  # cell id = nucleus id
    assert (lab[sim.nuclei > 0] == sim.nuclei[sim.nuclei > 0]).all()
    far = ndi.distance_transform_edt(sim.nuclei == 0)
    assert far[lab > 0].max() <= 12.0
    for i in ids:
        one = lab == i
        assert ndi.label(one)[1] == 1 and (ndi.binary_fill_holes(one) == one).all()


def test_fill_holes_gives_enclosed_background_to_its_object():
    lab = np.zeros((9, 9), np.int32)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 0
    lab[7, 7] = 2
    out = fill_holes(lab)
    assert out[3, 3] == 1 and lab[3, 3] == 0 and out[7, 7] == 2 and (out[8] == 0).all()


def test_fixed_threshold_is_used_as_given():
    assert cells.image_threshold(None, [], 0.3) == {"threshold": 0.3, "method": "fixed"}


def _fill_every_object(labels):
    """fill_holes as it was: every object's box, in id order."""
    out = labels.copy()
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            crop = out[sl]
            crop[ndi.binary_fill_holes(crop == i) & (crop == 0)] = i
    return out


def test_fill_holes_only_where_a_pocket_is_equals_filling_every_object(rng):
    """Nested rings (the lower id takes a hole both enclose), holes touching other objects,
    background reaching the border, random and 3D labels: the same as filling every object."""
    lab = np.zeros((40, 40), np.int32)
    lab[5:35, 5:35] = 3
    lab[10:30, 10:30] = 0
    lab[14:26, 14:26] = 1
    lab[17:23, 17:23] = 0
    lab[19, 19] = 2
    lab[0:3, :] = 4
    lab[20, 0:12] = 0  # a channel from the border into the outer ring's hole
    out = fill_holes(lab)
    assert out[18, 18] == 1 and out[12, 12] == 0
    np.testing.assert_array_equal(out, _fill_every_object(lab))
    for t in range(200):
        shape = (8, 12, 10) if t % 5 == 0 else (int(rng.integers(5, 50)), int(rng.integers(5, 50)))
        dense = rng.random(shape) < rng.uniform(0.3, 0.9)
        many = ndi.label(dense)[0] if t % 2 else rng.integers(0, 6, shape) * dense
        many = many.astype(np.int32)
        np.testing.assert_array_equal(fill_holes(many), _fill_every_object(many))


def test_cell_consistency_on_the_half_resolution_grid_follows_full_resolution(rng):
    """The samples' cells are grown from the same nuclei on half the resolution: an exact sample
    reproduces every cell, and on noisy samples the count per cell is within one of the count
    at full resolution (`consistency_grid` 1)."""
    sim = simulate_image((256, 256), density=700, seed=4)
    nuc, n = sim.nuclei, int(sim.nuclei.max())
    prob = (sim.cells > 0).astype(np.float32)
    dist = ndi.distance_transform_edt(nuc == 0).astype(np.float32)
    dist = 1 - np.clip(dist / 30, 0, 1)
    p = Params()
    mean = cells_from(prob, dist, nuc, p)
    assert cell_hits(mean, nuc, n, [(prob, dist)], p).tolist() == [1] * n

    def noisy(a):
        return np.clip(a + ndi.gaussian_filter(rng.standard_normal(a.shape), 3) * 3.0, 0, 1)

    samples = [(noisy(prob), noisy(dist)) for _ in range(4)]
    near = reach(nuc, p)
    full = sum(best_iou(mean, cells_from(f, d, nuc, p, near), n) > p.match_iou for f, d in samples)
    half = cell_hits(mean, nuc, n, samples, p, near)
    assert np.sum(full < 4) >= 5  # the samples disagree on some cells
    assert np.all(np.abs(half - full) <= 1) and np.mean(half != full) <= 0.2
    one = Params(consistency_grid=1)
    assert np.array_equal(cell_hits(mean, nuc, n, samples, one, near), full)
