"""Synthetic fluorescence microscopy: shapes, ground truth, phenotypes, noise model, files."""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.measure import regionprops

from microdiff.simulate import simulate_image, write_experiment

SHAPE = (256, 256)


@pytest.fixture(scope="module")
def sim():
    return simulate_image(SHAPE, n_cells=60, seed=3)


def _psnr(res):
    clean = res.clean.astype(np.float64)
    mse = np.mean((res.noisy - clean) ** 2)
    span = clean.max() - clean.min()
    return 10 * np.log10(span**2 / mse)


def test_shapes_and_dtypes(sim):
    assert sim.noisy.shape == (2, *SHAPE) and sim.noisy.dtype == np.uint16
    assert sim.clean.shape == (2, *SHAPE) and sim.clean.dtype == np.float32
    assert sim.nuclei.shape == SHAPE and sim.nuclei.dtype == np.int32
    assert sim.cells.shape == SHAPE and sim.cells.dtype == np.int32
    assert sim.channels == ("nuclei", "cytoplasm")
    cols = {"id", "class", "class_name", "centroid_y", "centroid_x", "area"}
    assert cols <= set(sim.objects.columns)
    assert set(sim.objects["id"]) == set(np.unique(sim.nuclei)) - {0}
    areas = np.bincount(sim.nuclei.ravel())[sim.objects["id"]]
    assert np.array_equal(areas, sim.objects["area"])


def test_deterministic_by_seed():
    a = simulate_image((128, 128), n_cells=12, seed=5)
    b = simulate_image((128, 128), n_cells=12, seed=5)
    c = simulate_image((128, 128), n_cells=12, seed=6)
    assert np.array_equal(a.noisy, b.noisy) and np.array_equal(a.clean, b.clean)
    assert np.array_equal(a.cells, b.cells)
    pd.testing.assert_frame_equal(a.objects, b.objects)
    assert not np.array_equal(a.noisy, c.noisy)


def test_labels_agree_with_clean_image(sim):
    nuc = sim.clean[0] - sim.params["offset"]
    inside = nuc[sim.nuclei > 0].mean()
    assert inside > 3 * nuc[sim.cells == 0].mean()
    assert inside > nuc[(sim.cells > 0) & (sim.nuclei == 0)].mean()
    cyto = sim.clean[1]
    assert cyto[(sim.cells > 0) & (sim.nuclei == 0)].mean() > cyto[sim.cells == 0].mean() + 10


def test_each_nucleus_inside_its_cell(sim):
    fg = sim.nuclei > 0
    assert np.array_equal(sim.cells[fg], sim.nuclei[fg])
    # every cell is one connected piece that holds its nucleus, and cells touch each other
    assert set(np.unique(sim.cells)) == set(np.unique(sim.nuclei))
    a, b = sim.cells[1:], sim.cells[:-1]
    assert np.any((a != b) & (a > 0) & (b > 0))


def test_nuclei_touch_or_overlap():
    res = simulate_image((384, 384), n_cells=120, seed=1)
    lab = res.nuclei
    touching = set()
    for a, b in ((lab[1:], lab[:-1]), (lab[:, 1:], lab[:, :-1])):
        m = (a != b) & (a > 0) & (b > 0)
        touching |= set(a[m]) | set(b[m])
    assert len(touching) >= 4


def test_classes_differ_in_shape_intensity_texture():
    res = simulate_image((384, 384), n_cells=120, seed=2)
    t = res.objects.set_index("id")
    assert set(t["class_name"]) == {"round", "elongated"}
    props = {p.label: p for p in regionprops(res.nuclei, intensity_image=res.clean[0])}
    t["ecc"] = [props[i].eccentricity for i in t.index]
    t["mean"] = [props[i].intensity_mean - res.params["offset"] for i in t.index]
    # texture: relative standard deviation of the nuclear signal inside the inner part
    t["cv"] = [np.std(props[i].image_intensity[props[i].image]) / t.loc[i, "mean"] for i in t.index]
    g = t.groupby("class_name")[["area", "ecc", "mean", "cv"]].mean()
    assert g.loc["elongated", "area"] > 1.4 * g.loc["round", "area"]
    assert g.loc["elongated", "ecc"] > g.loc["round", "ecc"] + 0.25
    assert g.loc["round", "mean"] > 1.4 * g.loc["elongated", "mean"]
    assert g.loc["elongated", "cv"] > g.loc["round", "cv"]


def test_noise_is_poisson_gaussian():
    res = simulate_image((256, 256), n_cells=40, photons=40, gain=3.0, read_noise=5.0, seed=4)
    diff = res.noisy.astype(np.float64) - res.clean
    signal = (res.clean - res.params["offset"]).ravel()
    resid = (diff**2).ravel()
    # bin by expected signal: the variance rises linearly with slope gain over read_noise^2
    bins = np.quantile(signal, np.linspace(0, 1, 9))
    which = np.clip(np.digitize(signal, bins) - 1, 0, 7)
    m = np.bincount(which, signal) / np.bincount(which)
    v = np.bincount(which, resid) / np.bincount(which)
    slope, icpt = np.polyfit(m, v, 1)
    assert slope == pytest.approx(3.0, rel=0.1)
    assert icpt == pytest.approx(25 + 1 / 12, abs=4)
    assert np.mean(diff) == pytest.approx(0, abs=0.15)  # about 4 standard errors
    assert np.mean(resid) / np.mean(res.variance()) == pytest.approx(1.0, rel=0.03)


def test_more_photons_give_higher_psnr():
    lo = simulate_image((128, 128), n_cells=12, photons=10, seed=7)
    hi = simulate_image((128, 128), n_cells=12, photons=300, seed=7)
    np.testing.assert_allclose((lo.clean - 100) / 10, (hi.clean - 100) / 300, rtol=1e-4, atol=1e-4)
    assert _psnr(hi) > _psnr(lo) + 10


def test_single_channel_and_class_fractions():
    res = simulate_image((192, 192), n_cells=40, channels=("nuclei",), fractions=(1, 0), seed=8)
    assert res.noisy.shape == (1, 192, 192) and res.channels == ("nuclei",)
    assert set(res.objects["class_name"]) == {"round"}
    with pytest.raises(ValueError):
        simulate_image((64, 64), channels=("dapi",))


def test_3d():
    res = simulate_image((12, 128, 128), n_cells=12, seed=9)
    assert res.noisy.shape == (2, 12, 128, 128) and res.nuclei.shape == (12, 128, 128)
    assert {"centroid_z", "centroid_y", "centroid_x"} <= set(res.objects.columns)
    assert len(res.objects) >= 8
    fg = res.nuclei > 0
    assert np.array_equal(res.cells[fg], res.nuclei[fg])
    # nuclei are ellipsoids: each spans several planes, but not the whole stack
    for p in regionprops(res.nuclei):
        assert 2 <= p.bbox[3] - p.bbox[0] < 12
    assert res.clean[0][fg].mean() > res.clean[0][res.cells == 0].mean() + 10
    assert len(res.params["psf_sigma"]) == 3


def test_write_experiment(tmp_path):
    sheet = write_experiment(tmp_path, n_samples=3, shape=(160, 160), n_cells=30, seed=0)
    table = pd.read_csv(sheet, sep="\t")
    assert list(table.columns) == ["sample", "path", "channels", "pixel_size"]
    assert list(table["sample"]) == ["sample01", "sample02", "sample03"]
    assert set(table["channels"]) == {"nuclei,cytoplasm"}
    shares = []
    for row in table.itertuples():
        path = sheet.parent / row.path
        with tifffile.TiffFile(path) as tf:
            assert tf.is_ome
            s = tf.series[0]
            assert s.axes == "CYX" and s.shape == (2, 160, 160) and s.dtype == np.uint16
            meta = tf.ome_metadata
        assert 'PhysicalSizeX="0.65"' in meta and 'PhysicalSizeY="0.65"' in meta
        assert re.findall(r'Channel [^>]*Name="(\w+)"', meta) == ["nuclei", "cytoplasm"]
        truth = tmp_path / "truth"
        clean = tifffile.imread(truth / f"{row.sample}_clean.ome.tif")
        nuclei = tifffile.imread(truth / f"{row.sample}_nuclei.tif")
        cells = tifffile.imread(truth / f"{row.sample}_cells.tif")
        objects = pd.read_csv(truth / f"{row.sample}_objects.csv")
        assert clean.dtype == np.float32 and clean.shape == (2, 160, 160)
        assert nuclei.dtype == np.int32 and cells.shape == (160, 160)
        assert set(objects["id"]) == set(np.unique(nuclei)) - {0}
        shares.append((objects["class"] == 1).mean())
    assert shares[0] < shares[-1]  # the class mix changes across samples
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))  # no temporaries left
    summary = pd.read_csv(tmp_path / "truth" / "classes.tsv", sep="\t")
    assert len(summary) == 3


def test_write_experiment_3d(tmp_path):
    sheet = write_experiment(tmp_path, n_samples=1, shape=(8, 96, 96), n_cells=8, z_scale=2.0)
    path = sheet.parent / pd.read_csv(sheet, sep="\t")["path"][0]
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "CZYX" and tf.series[0].shape == (2, 8, 96, 96)
        assert 'PhysicalSizeZ="1.3"' in tf.ome_metadata
