import math

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk
from skimage.measure import perimeter

from microdiff.features import (
    experiment_table,
    object_bboxes,
    object_table,
    texture,
)
from microdiff.provenance import read_table_provenance, record, write_table


def scene():
    """A 10x20 rectangle (1), a disc of radius 10 (2), a square touching the rectangle (3)."""
    lab = np.zeros((64, 64), np.int32)
    lab[10:20, 10:30] = 1
    rr, cc = disk((40, 40), 10)
    lab[rr, cc] = 2
    lab[10:20, 30:40] = 3
    ramp = np.tile(np.arange(64.0), (64, 1))
    image = np.stack([np.full(lab.shape, 5.0), ramp])
    return lab, image


def by_id(df):
    return df.set_index("id")


def test_shape_against_hand_values_and_skimage():
    lab, image = scene()
    df = by_id(object_table(lab, image, "s", ["dna", "ramp"], tile=16))
    assert list(df.index) == [1, 2, 3]
    rect, disc = df.loc[1], df.loc[2]
    assert rect["area_px"] == 200
    assert disc["area_px"] == (lab == 2).sum()
    assert abs(disc["area_px"] - math.pi * 100) < 0.05 * math.pi * 100
    assert (rect["centroid_y"], rect["centroid_x"]) == (14.5, 19.5)
    assert (disc["centroid_y"], disc["centroid_x"]) == (40.0, 40.0)
    assert [rect[f"bbox_{a}"] for a in ("y0", "x0", "y1", "x1")] == [10, 10, 20, 30]
    # skimage's 4-connected perimeter: pixel-centre outline of the 10x20 box is 2 * (9 + 19)
    assert rect["perimeter_px"] == pytest.approx(56.0)
    assert disc["perimeter_px"] == pytest.approx(perimeter(lab == 2, 4))
    assert abs(disc["perimeter_px"] - 2 * math.pi * 10) < 0.1 * 2 * math.pi * 10
    assert rect["solidity"] == 1.0 and disc["solidity"] < 1.0
    assert disc["eccentricity"] == pytest.approx(0.0, abs=1e-6)
    # axis lengths of a uniform a x b box: 4 * sqrt(var) with var = (n^2 - 1) / 12
    assert rect["axis_major_px"] == pytest.approx(4 * math.sqrt((20**2 - 1) / 12))
    assert rect["axis_minor_px"] == pytest.approx(4 * math.sqrt((10**2 - 1) / 12))
    assert rect["diameter_px"] == pytest.approx(math.sqrt(4 * 200 / math.pi))
    assert df["touches_border"].sum() == 0


def test_intensity_stats_constant_and_ramp():
    lab, image = scene()
    rect = by_id(object_table(lab, image, "s", ["dna", "ramp"]))
    rect = rect.loc[1]
    assert rect["intensity_mean_dna"] == 5.0 and rect["intensity_std_dna"] == 0.0
    assert rect["intensity_integrated_dna"] == 5.0 * 200
    xs = np.arange(10.0, 30.0)  # ramp = column index over columns 10..29, 10 rows each
    assert rect["intensity_mean_ramp"] == pytest.approx(xs.mean())
    assert rect["intensity_median_ramp"] == pytest.approx(np.median(xs))
    assert rect["intensity_std_ramp"] == pytest.approx(xs.std())
    assert (rect["intensity_min_ramp"], rect["intensity_max_ramp"]) == (10.0, 29.0)
    assert rect["intensity_integrated_ramp"] == pytest.approx(10 * xs.sum())


def test_texture_constant_and_stripes():
    mask = np.ones((8, 8), bool)
    flat = texture(np.full((8, 8), 3.0), mask)
    assert flat["contrast"] == 0.0 and flat["energy"] == 1.0 and flat["homogeneity"] == 1.0
    stripes = np.tile([0.0, 1.0], (8, 4))  # alternating columns
    tex = texture(stripes, mask, levels=2)
    # horizontal and diagonal pairs always differ by one level, vertical pairs never do
    assert tex["contrast"] == pytest.approx(3 / 4)
    lone = np.zeros((3, 3), bool)
    lone[1, 1] = True
    assert all(math.isnan(v) for v in texture(np.ones((3, 3)), lone).values())


def test_background_pixels_do_not_enter_texture():
    values = np.zeros((6, 6))
    values[1:5, 1:5] = 7.0
    mask = values > 0
    assert texture(values, mask)["contrast"] == 0.0


def test_neighbour_counts_of_touching_squares():
    lab = np.zeros((30, 40), np.int32)
    lab[5:10, 5:10] = 1
    lab[5:10, 10:15] = 2  # touches 1
    lab[5:10, 17:22] = 3  # 2 px gap to 2
    lab[20:25, 30:35] = 4  # alone
    touch = by_id(object_table(lab, neighbor_distance=1))["neighbors"]
    assert touch.to_dict() == {1: 1, 2: 1, 3: 0, 4: 0}
    near = by_id(object_table(lab, neighbor_distance=3))["neighbors"]
    assert near.to_dict() == {1: 1, 2: 2, 3: 1, 4: 0}


def test_3d_volume_and_undefined_2d_columns():
    lab = np.zeros((10, 12, 14), np.int32)
    lab[2:6, 3:8, 4:11] = 5
    image = np.ones((1, *lab.shape))
    df = object_table(lab, image, "s", pixel_size=(2.0, 0.5, 0.5))
    row = df.iloc[0]
    assert row["volume_px"] == 4 * 5 * 7
    assert row["volume_um3"] == pytest.approx(4 * 5 * 7 * 2.0 * 0.25)
    assert (row["centroid_z"], row["centroid_y"], row["centroid_x"]) == (3.5, 5.0, 7.0)
    assert row["centroid_z_um"] == 7.0
    assert math.isnan(row["perimeter_px"]) and math.isnan(row["eccentricity"])
    assert row["solidity"] == pytest.approx(1.0)
    # 3D axis length = sqrt(20 var) along the principal axis; here z: 4 voxels 2 um apart
    assert row["axis_major_um"] == pytest.approx(math.sqrt(20 * 2.0**2 * (4**2 - 1) / 12))
    assert row["axis_major_px"] == pytest.approx(math.sqrt(20 * (7**2 - 1) / 12))
    assert row["intensity_integrated_c0"] == 140.0


def random_labels(shape=(150, 170), n=40, seed=0):
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    pts = rng.integers(0, shape, size=(n, 2))
    lab[pts[:, 0], pts[:, 1]] = np.arange(1, n + 1)
    lab = expand_labels(lab, 9)
    lab[lab == 7] = 0  # a missing id
    return lab, rng.normal(size=(2, *shape))


def test_objects_crossing_tiles_counted_once_with_identical_features():
    lab, image = random_labels()
    unc = np.abs(image[0]).astype(np.float32)
    small = object_table(lab, image, "s", uncertainty=unc, tile=16)
    huge = object_table(lab, image, "s", uncertainty=unc, tile=4096)
    ids = np.unique(lab)[1:]
    assert list(small["id"]) == list(ids)
    crossing = (small["bbox_y0"] // 16 != (small["bbox_y1"] - 1) // 16).sum()
    assert crossing > 10
    pd.testing.assert_frame_equal(small, huge)


def test_huge_ids_and_bboxes():
    lab = np.zeros((20, 20), np.uint32)
    lab[2:5, 2:15] = 4_000_000_000
    lab[10:12, 10:12] = 3
    boxes = object_bboxes(lab, tile=8)
    assert boxes.to_dict("list") == {
        "id": [3, 4_000_000_000],
        "y0": [10, 2],
        "x0": [10, 2],
        "y1": [12, 5],
        "x1": [12, 15],
    }


def test_uncertainty_per_object():
    lab, _ = scene()
    unc = np.zeros(lab.shape, np.float32)
    unc[10:20, 10:20] = 1.0  # left half of the rectangle
    df = by_id(object_table(lab, uncertainty=unc, object_uncertainty={1: 0.3, 3: 0.9}))
    assert df.loc[1, "uncertainty_mean"] == pytest.approx(0.5)
    assert df.loc[1, "uncertainty_max"] == 1.0 and df.loc[3, "uncertainty_mean"] == 0.0
    assert df.loc[3, "uncertainty_object"] == 0.9 and math.isnan(df.loc[2, "uncertainty_object"])


def test_empty_labels_give_empty_table_with_columns():
    df = object_table(np.zeros((20, 20), np.int32), np.zeros((1, 20, 20)), "s")
    assert len(df) == 0 and "intensity_mean_c0" in df.columns and "area_px" in df.columns


def test_write_read_and_experiment_table(tmp_path):
    lab, image = scene()
    paths = []
    for name in ("a", "b"):
        df = object_table(lab, image, name)
        paths.append(tmp_path / name / "objects.parquet")
        write_table(paths[-1], df, record("features", {"tile": 1024}))
    assert read_table_provenance(paths[0])["stage"] == "features"
    exp = experiment_table(paths)
    assert len(exp) == 6 and sorted(exp["sample"].unique()) == ["a", "b"]
    assert list(tmp_path.glob("*/.*tmp*")) == []


def test_zarr_input_read_lazily_in_chunk_aligned_tiles():
    zarr = pytest.importorskip("zarr")
    lab, image = random_labels(shape=(64, 80), n=12, seed=1)
    zlab = zarr.create_array(store={}, shape=lab.shape, chunks=(16, 16), dtype=np.int32)
    zlab[:] = lab
    zimg = zarr.create_array(store={}, shape=image.shape, chunks=(1, 16, 16), dtype=np.float64)
    zimg[:] = image
    got = object_table(zlab, zimg, "s", tile=20)
    pd.testing.assert_frame_equal(got, object_table(lab, image, "s", tile=4096))


def test_block_texture_and_intensity_match_per_object_references(rng):
    """Many objects measured at once give what skimage's graycomatrix + graycoprops and numpy
    give for each object alone (the per-object way this replaced)."""
    from skimage.feature import graycomatrix, graycoprops

    from microdiff.features.measure import ANGLES, intensity_stats, textures

    lab = np.zeros((60, 80), np.int32)
    boxes = [(2, 12, 3, 20), (15, 30, 5, 15), (15, 30, 16, 40), (40, 58, 50, 78), (5, 6, 60, 61)]
    for i, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        lab[y0:y1, x0:x1] = i
    lab[40:50, 50:55] = 0  # a notch: pairs across it are not the object's
    lab[20:25, 30:40] = 6  # touches object 3: their pairs are nobody's
    values = rng.random(lab.shape) * 100
    values[2:12, 3:20] = 7.0  # object 1 is flat
    n, levels = 6, 8
    tex = textures(values, lab - 1, n, levels)
    stats = intensity_stats(values, lab - 1, n)
    for i in range(1, n + 1):
        mask = lab == i
        v = values[mask]
        expect = [v.mean(), np.median(v), v.std(), v.min(), v.max(), v.sum()]
        got = [stats[s][i - 1] for s in ("mean", "median", "std", "min", "max", "integrated")]
        assert np.allclose(got, expect, rtol=1e-12)
        q = np.zeros(lab.shape, np.uint8)
        if v.max() > v.min():
            q[mask] = 1 + np.minimum(np.floor((v - v.min()) / np.ptp(v) * levels), levels - 1)
        else:
            q[mask] = 1
        g = graycomatrix(q, [1], ANGLES, levels=levels + 1, symmetric=True)[1:, 1:]
        has = g.sum(axis=(0, 1))[0] > 0
        for prop in ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM"):
            if not has.any():
                assert math.isnan(tex[prop.lower()][i - 1])
                continue
            with np.errstate(all="ignore"):
                ref = graycoprops(g[..., has].astype(np.float64), prop)
            if prop == "correlation":  # graycoprops gives 1 where a direction is flat, as we do
                ref = np.nan_to_num(ref, nan=1.0)
            assert tex[prop.lower()][i - 1] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-12)
    assert math.isnan(tex["contrast"][4])  # a single pixel has no pair
    assert tex["contrast"][0] == 0.0 and tex["energy"][0] == pytest.approx(1.0)


def test_textures_from_intensity_min_max_are_identical(rng):
    """block_stats hands intensity_stats' min and max to textures: bit for bit what textures
    finds itself (float32 values, as the images are)."""
    from microdiff.features.measure import intensity_stats, textures

    lab = np.zeros((50, 70), np.int32)
    for i, (y, x) in enumerate([(10, 10), (30, 20), (25, 50), (40, 60)], start=1):
        rr, cc = disk((y, x), 6 + i, shape=lab.shape)
        lab[rr, cc] = i
    values = (rng.random(lab.shape) * 3).astype(np.float32)
    values[lab == 2] = 1.5  # a flat object
    stats = intensity_stats(values, lab - 1, 4)
    shared = textures(values, lab - 1, 4, 16, stats["min"], stats["max"])
    own = textures(values, lab - 1, 4, 16)
    for name in own:
        np.testing.assert_array_equal(shared[name], own[name])
