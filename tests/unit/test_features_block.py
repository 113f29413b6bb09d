"""The block-wise measurements (issue 15) against the per-object regionprops and distance
transform measurements they replace, and their fast paths against the general ones."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.draw import ellipse

from microdiff.features.measure import measure_object
from microdiff.features.shape import block_shapes, object_index


def crowded(rng, size=96, n=40):
    """Overlapping random ellipses (later ones on top), some cut by the edge, with 1-px gaps."""
    lab = np.zeros((size, size), np.int32)
    for i in range(1, n + 1):
        r, c = rng.integers(0, size, 2)
        a, b = rng.integers(2, 12, 2)
        rr, cc = ellipse(r, c, a, b, lab.shape, rotation=rng.uniform(0, np.pi))
        lab[rr, cc] = 3 * i
    return lab


@pytest.mark.parametrize("distance", [1.0, 1.5, 2.0, 3.0])
def test_block_shapes_match_per_object(distance):
    lab = crowded(np.random.default_rng(int(distance * 10)))
    ids = np.unique(lab)[1:]
    slices = [s for s in ndi.find_objects(lab) if s is not None]
    sh = block_shapes(lab, object_index(lab, ids), ids, distance)
    ref = pd.DataFrame(
        [measure_object(int(i), lab, s, None, distance) for i, s in zip(ids, slices)]
    )
    assert (sh["n"] == ref["n"]).all()
    assert (sh["neighbors"] == ref["neighbors"]).all()
    starts = np.array([[s.start for s in sl] for sl in slices])
    np.testing.assert_allclose(sh["centroid"], np.stack(ref["c"]) + starts, rtol=0, atol=1e-9)
    for col in ("perimeter_px", "eccentricity", "solidity", "axis_major_px", "axis_minor_px"):
        np.testing.assert_allclose(sh[col], ref[col], rtol=1e-9, atol=1e-9, err_msg=col)


def test_integer_sort_and_shared_pairs_change_nothing():
    """uint16 values (one sort of an integer key) give the float path's (lexsort) statistics,
    and textures with the pairs found once equal textures finding them."""
    from microdiff.features.measure import cooccurrence_pairs, intensity_stats, textures

    rng = np.random.default_rng(3)
    lab = crowded(rng)
    ids = np.unique(lab)[1:]
    obj = object_index(lab, ids)
    values = rng.integers(0, 4000, lab.shape).astype(np.uint16)
    a = intensity_stats(values, obj, len(ids))
    b = intensity_stats(values.astype(np.float64), obj, len(ids))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    t1 = textures(values, obj, len(ids), 16)
    t2 = textures(values, obj, len(ids), 16, pairs=cooccurrence_pairs(obj))
    for k in t1:
        np.testing.assert_array_equal(t1[k], t2[k], err_msg=k)


def test_convex_area_is_the_pixel_count_of_convex_hull_image():
    """Exact (integer) agreement on random blobs, scattered pixels and thin shapes."""
    import warnings

    from skimage.morphology import convex_hull_image

    from microdiff.features.shape import convex_area

    rng = np.random.default_rng(5)
    for k in range(400):
        h, w = rng.integers(1, 30, 2)
        m = rng.random((h, w)) < rng.uniform(0.02, 0.9)
        if k % 2:
            m = np.zeros((h, w), bool)
            r = (rng.uniform(0.5, h / 2 + 1), rng.uniform(0.5, w / 2 + 1))
            m[ellipse(h / 2, w / 2, *r, (h, w), rotation=rng.uniform(0, 3))] = True
        if not m.any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = int(convex_hull_image(m).sum())
        assert convex_area(m) == want, (m.astype(int), want)


def test_convex_areas_of_many_objects_at_once_are_each_objects_own():
    """The hulls of all objects are found together (chains dropped point by point, all objects
    at once): each count is that object's alone, whatever lies beside it."""
    from microdiff.features.shape import convex_area, convex_areas

    rng = np.random.default_rng(8)
    lab = rng.integers(0, 7, (40, 50)) * (rng.random((40, 50)) < 0.7)
    ids = np.unique(lab[lab > 0])
    m = lab > 0
    yy, xx = np.nonzero(m)
    o = np.searchsorted(ids, lab[m])
    want = [convex_area(lab == i) for i in ids]
    np.testing.assert_array_equal(convex_areas(yy, xx, o, len(ids)), want)
    # many more object slots than pixels: the sorted (np.unique) path, the same counts
    sparse = convex_areas(yy, xx, o, 1000 * len(ids))
    np.testing.assert_array_equal(sparse[: len(ids)], want)
    assert not sparse[len(ids) :].any()
