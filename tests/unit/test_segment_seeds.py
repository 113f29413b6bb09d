"""Instance extraction options: h-maxima seeds split touching objects that a fixed seed level
merges; objects the K samples do not reproduce are dropped (in `stitch` and for whole images)."""

import numpy as np

from microdiff.metrics import match
from microdiff.segment.instances import (
    Params,
    Window,
    drop_inconsistent,
    extract,
    stitch,
)
from microdiff.segment.represent import representation
from microdiff.segment.seeds import h_maxima


def cones(shape, centers, radius):
    """Two (or more) overlapping cones: distance map 1 at each centre, 0 at radius."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.zeros(shape)
    lab = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centers, 1):
        di = np.clip(1 - np.hypot(yy - cy, xx - cx) / radius, 0, 1)
        lab[di > d] = i
        d = np.maximum(d, di)
    return (d > 0).astype(float), d, lab


def test_h_maxima_by_region_equals_skimage_on_the_whole_image():
    """Reconstructing each region of d > 0 alone finds skimage's h-maxima exactly, also with
    plateaus, regions touching the border, and a level below h (the whole image at once)."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima as whole

    rng = np.random.default_rng(3)
    for k in range(12):
        shape = (40, 50) if k % 3 else (6, 20, 24)
        d = ndi.gaussian_filter(rng.random(shape), 1.5 if k % 2 else 0.8).astype(np.float32)
        d = np.where(d > np.quantile(d, 0.6), (d - d.min()) / np.ptp(d), 0).astype(np.float32)
        d[..., :4, :4] = d.max()  # a plateau on the border
        for h, level in ((0.05, 0.3), (0.02, 0.02), (0.1, 0.05), (2.0, 0.3)):
            want = whole(d, h).astype(bool) & (d > level)
            np.testing.assert_array_equal(h_maxima(d, h, level), want)


def test_h_maxima_works_more_only_on_regions_of_several_peaks(monkeypatch):
    """Distance maps of discs (one peak each, two where discs touch, flat tops where rounded)
    give skimage's h-maxima exactly; a region with one peak needs no more work."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima as whole

    from microdiff.segment import seeds

    calls = []
    real = seeds._largest_below
    monkeypatch.setattr(seeds, "_largest_below", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(5)
    for k in range(16):
        lab = disc((64, 80), [tuple(rng.integers(0, 64, 2)) for _ in range(6)], rng.uniform(4, 10))
        d = ndi.gaussian_filter(ndi.distance_transform_edt(lab > 0), 1.0 if k % 2 else 0.0)
        d = np.where(lab > 0, d / d.max(), 0).astype(np.float32 if k % 4 else np.float64)
        if k % 3 == 0:
            d = np.round(d * 20) / 20  # plateaus
        for h, level in ((0.2, 0.3), (0.05, 0.1), (0.3, 0.6)):
            want = whole(d, h).astype(bool) & (d > level)
            np.testing.assert_array_equal(h_maxima(d, h, level), want)
    calls.clear()
    d = disc((40, 120), [(20, 20), (20, 60), (20, 100)], 8)  # three single-peak objects
    d = ndi.distance_transform_edt(d > 0)
    d = (d / d.max()).astype(np.float32)
    np.testing.assert_array_equal(h_maxima(d, 0.2, 0.3), whole(d, 0.2).astype(bool) & (d > 0.3))
    assert not calls


def test_h_maxima_of_many_peaked_fields_equals_skimage(monkeypatch):
    """Rough fields (many regions of several peaks, some with plateaus), float32 and float64,
    2D and 3D, any h and level: the same pixels as skimage's h-maxima, by the path that joins
    each lower peak to the pixels above its threshold."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima as whole

    from microdiff.segment import seeds

    calls = []
    real = seeds._largest_below
    monkeypatch.setattr(seeds, "_largest_below", lambda *a: calls.append(len(a[0])) or real(*a))
    rng = np.random.default_rng(11)
    for k in range(60):
        shape = [(64, 64), (30, 90), (5, 24, 24)][k % 3]
        d = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.7, 3))
        d = (d - d.min()) / np.ptp(d)
        d = np.where(d > rng.uniform(0.2, 0.7), d, 0)
        if k % 4 == 0:
            d = np.round(d * rng.integers(5, 40)) / 40  # plateaus
        d = d.astype([np.float32, np.float64][k % 2])
        for h, level in ((rng.uniform(0.01, 0.3), rng.uniform(0.0, 0.6)), (0.05, 0.1)):
            want = whole(d, h).astype(bool) & (d > level)
            np.testing.assert_array_equal(h_maxima(d, h, level), want)
    assert sum(calls) > 100  # lower peaks were decided by their joined pixels


def test_h_maxima_seeds_split_what_a_fixed_level_merges():
    # centres 12 px apart, radius 20: the saddle between them is at distance 0.7
    prob, dist, truth = cones((48, 72), [(24, 30), (24, 42)], 20)
    fixed, _ = extract(prob, dist, Params(seed_level=0.5, seed_h=0, smooth=0))
    assert fixed.max() == 1  # one connected seed above the level: merged
    hmax, anchors = extract(prob, dist, Params(seed_level=0.3, seed_h=0.2, smooth=1.0))
    assert hmax.max() == 2 and len(anchors) == 2
    assert match(truth, hmax, 0.8)["tp"] == 2
    # shallow dips (dynamic below h) do not split an object
    one, _ = extract(prob, np.clip(dist + 0.05 * np.sin(np.arange(72) / 2), 0, 1),
                     Params(seed_level=0.3, seed_h=0.2, smooth=1.0))  # fmt: skip
    assert one.max() == 2


def disc(shape, centers, radius):
    lab = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i, (cy, cx) in enumerate(centers, 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return lab


def test_inconsistent_objects_are_dropped():
    lab = disc((40, 120), [(20, 20), (20, 60), (20, 100)], 8)
    r = (representation(lab) + 1) / 2
    first = (representation(np.where(lab == 1, 1, 0)) + 1) / 2
    samples = [(r[0], r[1]), (first[0], first[1]), (first[0], first[1])]

    def read(box):
        sl = box.slices
        return Window(
            r[0][sl], np.zeros_like(r[0][sl]), r[1][sl], [(f[sl], d[sl]) for f, d in samples]
        )

    from microdiff.tiling import iter_tiles, plan_tiles

    cores = [c for _, c, _ in iter_tiles(plan_tiles(lab.shape, tile=40, halo=0))]
    for level, n in ((0.0, 3), (0.5, 1), (0.3, 3)):
        out = np.zeros(lab.shape, np.int32)
        p = Params(threshold=0.5, seed_level=0.5, seed_h=0, smooth=0, min_consistency=level)
        facts = stitch(read, cores, lab.shape, out, halo=16, p=p)
        assert out.max() == n == len(facts["anchor"])
        assert np.all(facts["consistency"] >= level)
    kept, cons = drop_inconsistent(lab, np.array([1.0, 1 / 3, 1 / 3]), 0.5)
    assert kept.max() == 1 and cons.tolist() == [1.0] and np.array_equal(kept > 0, lab == 1)
