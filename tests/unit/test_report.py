"""The store-level pieces of features, classify and the report on a real segment-stage output
(the segment stage's own code with a pointwise stand-in model, as its tests use)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import zarr

from microdiff import classify, features, normalize, report
from microdiff.ingest import ingest
from microdiff.segment.model import Model
from microdiff.segment.stage import segment_image
from microdiff.simulate import simulate_image, write_sample
from microdiff.tiling import plan_store
from tests.unit.test_segment import Oracle

PARAMS = {"samples": 2, "steps": 2, "kinds": ["nuclei", "cells"], "label_halo": 40}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    sim = simulate_image((96, 160), density=500, seed=4)
    ingest(write_sample(d, "s", sim, pixel_size=0.5), d / "raw.ome.zarr", chunk_bytes=4096,
           progress=False)  # fmt: skip
    normalize.compute([d / "raw.ome.zarr"], (1.0, 99.8), d / "norm.json")
    plan = plan_store(d / "raw.ome.zarr", tile=32, halo=8, tiles_per_shard=4)
    segment_image(
        d / "raw.ome.zarr", d / "seg.ome.zarr", d / "segments.parquet", plan,
        Model(Oracle(), ("nuclei",), 1), d / "norm.json", PARAMS,
    )  # fmt: skip
    segments = pd.read_parquet(d / "segments.parquet")
    table = features.measure_sample(
        d / "seg.ome.zarr", [d / "raw.ome.zarr"], "s", segments=segments, tile=48
    )
    return d, sim, segments, table


def test_measure_sample_reads_labels_uncertainty_and_units(stores):
    d, _, segments, table = stores
    root = zarr.open_group(str(d / "seg.ome.zarr"), mode="r")
    nuclei = np.asarray(root["labels/nuclei/0"])
    nuc = table[table["kind"] == "nucleus"]
    assert sorted(nuc["id"]) == sorted(set(np.unique(nuclei)) - {0})
    assert set(table["kind"]) == {"nucleus", "cell"}
    assert {"intensity_mean_nuclei", "texture_contrast_cytoplasm"} <= set(table.columns)
    np.testing.assert_allclose(nuc["area_um2"], nuc["area_px"] * 0.25)
    # per-object uncertainty comes from segments.parquet, per-pixel from nuclei_std
    seg_nuc = segments[segments["kind"] == "nuclei"].set_index("id")["uncertainty"]
    np.testing.assert_allclose(nuc.set_index("id")["uncertainty_object"], seg_nuc[nuc["id"]])
    std = np.asarray(root["0"][1])
    first = nuc.iloc[0]
    assert first["uncertainty_mean"] == pytest.approx(std[nuclei == first["id"]].mean(), rel=1e-5)
    # restored-like second image: its channels are measured too, under its own prefix
    two = features.measure_sample(
        d / "seg.ome.zarr", [d / "raw.ome.zarr", d / "raw.ome.zarr"], "s", tile=48
    )
    np.testing.assert_allclose(two["intensity_mean_raw_nuclei"], two["intensity_mean_nuclei"])


def test_points_label_segmented_objects_and_supervised_run(stores):
    d, sim, _, table = stores
    points = sim.objects.rename(columns={"centroid_x": "x", "centroid_y": "y"})
    points = points.assign(sample="s", **{"class": points["class_name"]})[
        ["sample", "x", "y", "class"]
    ]
    path = d / "labels.tsv"
    points.to_csv(path, sep="\t", index=False)
    labels, unmatched = classify.stage_labels(path, {"s": d / "seg.ome.zarr"}, "nucleus", 2)
    assert len(labels) + (unmatched["reason"] != "outvoted").sum() >= len(points) * 0.9
    assert len(labels) > 0.7 * len(points)
    # each labelled object contains its point
    nuclei = np.asarray(zarr.open_group(str(d / "seg.ome.zarr"), mode="r")["labels/nuclei/0"])
    hits = nuclei[np.rint(points["y"]).astype(int), np.rint(points["x"]).astype(int)]
    assert (hits > 0).sum() > 0.7 * len(points)
    by_id = labels.set_index("id")["class"]
    inside = [(h, c) for h, c in zip(hits, points["class"]) if h in by_id.index]
    assert inside and np.mean([by_id[h] == c for h, c in inside]) > 0.9
    params = {"mode": "supervised", "supervised": {"n_splits": 3, "max_iter": 20}}
    classes, info, _ = classify.classify_experiment(table, params, labels)
    assert len(classes) == (table["kind"] == "nucleus").sum()
    assert any(c.startswith("cell_") for c in info["features"])  # cell features joined
    assert info["cv"] == "stratified-kfold" and 0 <= info["accuracy"] <= 1
    un, info_u, _ = classify.classify_experiment(
        table, {"mode": "unsupervised", "unsupervised": {"k": 2}}
    )
    assert set(un["class"]) <= {0, 1} and info_u["k"] == 2


def test_read_plane_is_read_small_and_read_window(stores, monkeypatch):
    """A small image's plane read once serves the whole view and the crops: the same values as
    `read_small` and `read_window`; a large one (past SMALL) is read by window."""
    from microdiff.report import common

    d = stores[0]
    box = (5, 37, 20, 52)
    for path, kw in ((d / "raw.ome.zarr", {}), (d / "seg.ome.zarr", {"labels": "nuclei"}),
                     (d / "seg.ome.zarr", {"channel": 1})):  # fmt: skip
        for max_px in (64, 1024):
            for small in (common.SMALL, 0):
                monkeypatch.setattr(common, "SMALL", small)
                view, source = common.read_plane(path, max_px=max_px, **kw)
                want = common.read_small(path, max_px, **kw)
                assert view.dtype == want.dtype
                np.testing.assert_array_equal(view, want)
                assert isinstance(source, np.ndarray) == (small > 0)
                window = common.read_window(source, box, **kw)
                np.testing.assert_array_equal(window, common.read_window(path, box, **kw))


def test_figures(stores, tmp_path):
    d, _, _, table = stores
    norm = report.read_json(d / "norm.json")
    segments = pd.read_parquet(d / "segments.parquet")
    fig = report.montage_figure(d / "raw.ome.zarr", d / "seg.ome.zarr", norm=norm,
                                segments=segments, max_px=64, crop=32)  # fmt: skip
    titles = [t.get_text() for t in fig.texts]  # panels are drawn on the figure, not in Axes
    assert titles[0].startswith("whole image") and int(titles[0].split("\n")[1].split()[0]) > 0
    assert any(t.startswith("A: most nuclei") for t in titles)
    report.save(fig, tmp_path / "montage.png")
    assert (tmp_path / "montage.png").read_bytes()[:4] == b"\x89PNG"
    # native-resolution crops land on objects: each holds nucleus pixels at level 0
    nuclei = np.asarray(zarr.open_group(str(d / "seg.ome.zarr"), mode="r")["labels/nuclei/0"])
    for pick in report.pick_crops(segments, nuclei.shape, crop=32, n=3):
        y0, y1, x0, x1 = pick["box"]
        assert (y1 - y0, x1 - x0) == (32, 32) and (nuclei[y0:y1, x0:x1] == pick["id"]).any()
        crop = report.read_window(d / "seg.ome.zarr", pick["box"], labels="nuclei")
        np.testing.assert_array_equal(crop, nuclei[y0:y1, x0:x1])
    small = report.read_small(d / "raw.ome.zarr", max_px=64)
    assert max(small.shape) <= 64 * 2 and small.ndim == 2
    curve = report.noise_curve(report.read_small(d / "raw.ome.zarr", 1024))
    assert len(curve) >= 5 and (curve["variance"] > 0).all()
    both = report.montage_figure(d / "raw.ome.zarr", d / "seg.ome.zarr", d / "raw.ome.zarr",
                                 norm=norm, segments=segments, max_px=64, crop=32)  # fmt: skip
    # the restored row is labelled once, left of its first crop
    assert sum(t.get_text() == "restored" for t in both.texts) == 1
    report.save(both, tmp_path / "both.png")
    # a segmentation with uncertainty channels but no nuclei labels: no uncertainty row
    shutil.copytree(d / "seg.ome.zarr", tmp_path / "seg.ome.zarr")
    labels = zarr.open_group(str(tmp_path / "seg.ome.zarr" / "labels"), mode="r+")
    labels.attrs["labels"] = [n for n in labels.attrs["labels"] if n != "nuclei"]
    del labels["nuclei"]
    fig = report.montage_figure(d / "raw.ome.zarr", tmp_path / "seg.ome.zarr", norm=norm,
                                segments=segments, max_px=64, crop=32)  # fmt: skip
    assert not any("uncertainty" in t.get_text() for t in fig.texts)
    fig = report.normalization_figure({"s": norm}, {"s": [curve, curve]})
    titles = [a.get_title() for a in fig.axes]
    assert sum("histogram" in t for t in titles) == sum("noise variance" in t for t in titles) == 2
    report.save(fig, tmp_path / "n.png")
    nuc = table[table["kind"] == "nucleus"]
    classes = nuc[["sample", "kind", "id"]].assign(
        **{"class": np.where(nuc["area_px"] > 60, "a", "b")}
    )
    report.save(report.feature_figure(table, classes, 4), tmp_path / "f.png")
    report.save(report.class_counts_figure(classify.summarize(classes)), tmp_path / "c.png")
    metrics = {"mode": "supervised", "cv": "x", "classes": ["a", "b"], "accuracy": 0.5,
               "f1_macro": 0.5, "confusion_matrix": [[3, 1], [2, 4]]}  # fmt: skip
    report.save(report.metrics_figure(metrics), tmp_path / "m.png")
    report.save(report.metrics_figure({"bic": {"2": 5.0, "3": 4.0}, "k": 3}), tmp_path / "b.png")
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in "nfcmb")


def test_poisson_noise_curve_slope_is_the_gain():
    rng = np.random.default_rng(0)
    mean = np.tile(np.linspace(100, 2000, 256), (256, 1))
    img = rng.poisson(mean / 2.0) * 2.0  # gain 2: variance = 2 * mean
    curve = report.noise_curve(img)
    slope = np.polyfit(curve["mean"], curve["variance"], 1)[0]
    assert slope == pytest.approx(2.0, rel=0.1)


def _noise_reference(img, bins=16):
    """noise_curve as it was: every pair, scipy's 3x3 mean, exact quantile bins."""
    from scipy.ndimage import uniform_filter

    d = (img[:, 1:] - img[:, :-1]) / np.sqrt(2)
    mean = uniform_filter(img, 3)[:, :-1]
    edges = np.quantile(mean, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        v = d[which == b]
        dev = np.abs(v - np.median(v))
        v = v[dev <= 4 * 1.4826 * max(float(np.median(dev)), 0.5)]
        out.append((mean[which == b].mean(), v.var()))
    return np.array(out)


def test_noise_curve_subsample_estimates_the_same_curve():
    rng = np.random.default_rng(1)
    mean = np.tile(np.linspace(100, 2000, 600), (700, 1))
    img = rng.poisson(mean / 2.0) * 2.0 + rng.normal(0, 3, mean.shape)  # no ties
    ref = _noise_reference(img)
    full = report.noise_curve(img, max_pairs=10**9)
    assert full["n"].sum() == img.shape[0] * (img.shape[1] - 1)
    np.testing.assert_allclose(full[["mean", "variance"]], ref, rtol=0.01)
    sub = report.noise_curve(img)  # 419,300 pairs: every 4th row
    assert sub["n"].sum() <= 1 << 17 and len(sub) == len(full) == 16
    np.testing.assert_allclose(sub["mean"], full["mean"], rtol=0.01)
    np.testing.assert_allclose(sub["variance"], full["variance"], rtol=0.06)
    slopes = [np.polyfit(c["mean"], c["variance"], 1)[0] for c in (full, sub)]
    assert slopes == pytest.approx([2.0, 2.0], rel=0.03)


def test_noise_curve_is_the_searchsorted_and_median_one():
    """The binning by comparisons and the partition medians give the curve bit for bit."""
    rng = np.random.default_rng(2)
    for img in (rng.poisson(np.tile(np.linspace(5, 300, 300), (260, 1))).astype(np.float32),
                rng.normal(100, 5, (301, 199)), rng.poisson(3.0, (700, 500)) * 1.0):  # fmt: skip
        got = report.noise_curve(img)
        h, w = img.shape
        step = max(1, -(-h * (w - 1) // (1 << 17)))
        rows = np.arange((h - 1) % step // 2, h, step)
        mid = img[rows].astype(np.float64)
        d = ((mid[:, 1:] - mid[:, :-1]) / np.sqrt(2)).ravel()
        col = img[np.maximum(rows - 1, 0)] + mid + img[np.minimum(rows + 1, h - 1)]
        col = np.pad(col, ((0, 0), (1, 1)), mode="symmetric")
        mean = ((col[:, :-3] + col[:, 1:-2] + col[:, 2:-1]) / 9).ravel()
        edges = np.unique(np.quantile(mean[:: max(1, mean.size >> 14)], np.linspace(0, 1, 17)))
        which = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, len(edges) - 2)
        want = []
        for b in range(len(edges) - 1):
            v = d[which == b]
            if v.size < 50:
                continue
            dev = np.abs(v - np.median(v))
            keep = dev <= 4 * 1.4826 * max(float(np.median(dev)), 0.5)
            var = float(np.mean((v[keep] - v[keep].mean()) ** 2))
            want.append({"mean": float(mean[which == b].mean()), "variance": var, "n": v.size})
        pd.testing.assert_frame_equal(got, pd.DataFrame(want, columns=["mean", "variance", "n"]))


def test_qc_reads_the_normalization_curves_where_they_are_the_same_pixels(stores, tmp_path):
    from microdiff import provenance
    from microdiff.report import qc

    d, _, segments, _ = stores
    raw, norm = d / "raw.ome.zarr", report.read_json(d / "norm.json")
    n_ch = len(norm["channels"])
    # what report_normalization writes and report_qc reads back
    images = report.read_small_channels(raw, 1024)  # one read, every channel
    for c, max_px in [(c, m) for c in range(n_ch) for m in (1024, 40)]:
        small = report.read_small(raw, max_px, channel=c)
        np.testing.assert_array_equal(report.read_small_channels(raw, max_px)[c], small)
        assert small.dtype == images.dtype == np.float32
    noise = {"s": [report.noise_curve(images[c]) for c in range(n_ch)]}
    provenance.write_table(tmp_path / "c.parquet", report.noise_curves_table(noise, 1024), {})
    curves = report.curves_by_sample(pd.read_parquet(tmp_path / "c.parquet"), 1024)
    for c in range(n_ch):
        pd.testing.assert_frame_equal(curves["s"][c], noise["s"][c])
    measured = qc.sample_qc("s", raw, norm, segments=segments)
    read = qc.sample_qc("s", raw, norm, segments=segments, curves=curves["s"])
    assert read == measured or pd.Series(read).equals(pd.Series(measured))
    # curves read at another size are not taken; an image larger than noise_px is measured
    assert report.curves_by_sample(pd.read_parquet(tmp_path / "c.parquet"), 512) == {}
    bogus = {c: noise["s"][c].assign(variance=1e6) for c in range(n_ch)}
    small = qc.sample_qc("s", raw, norm, noise_px=64, curves=bogus)
    assert small == qc.sample_qc("s", raw, norm, noise_px=64)
    assert read != qc.sample_qc("s", raw, norm, segments=segments, curves=bogus)


def test_runtime_table(tmp_path):
    for rule, job, s in [("a", "x", 1.5), ("a", "y", 2.5), ("b", "z", 0.5)]:
        (tmp_path / rule).mkdir(exist_ok=True)
        (tmp_path / rule / f"{job}.tsv").write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:01\t12.5\n")
    t = report.runtime_table(sorted(tmp_path.glob("*/*.tsv")))
    assert t.to_dict("list") == {"rule": ["a", "b"], "jobs": [2, 1], "total_s": [4.0, 0.5],
                                 "max_s": [2.5, 0.5], "max_rss_mb": [12.5, 12.5]}  # fmt: skip
    report.save(report.runtime_figure(t), tmp_path / "r.png")


def test_cli_features_and_classify(stores, tmp_path):
    from microdiff.cli import main

    d, sim, _, table = stores
    out = tmp_path / "objects.parquet"
    args = [str(d / "seg.ome.zarr"), str(d / "raw.ome.zarr"), "--out", str(out), "--sample", "s"]
    assert main(["features", *args, "--segments", str(d / "segments.parquet"), "--tile", "48"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)
    ids = table[table["kind"] == "nucleus"][["sample", "id"]].iloc[:6]
    ids.assign(**{"class": ["a", "b"] * 3}).to_csv(tmp_path / "ids.tsv", sep="\t", index=False)
    cls = tmp_path / "classes.parquet"
    args = [
        str(out),
        "--out",
        str(cls),
        "--mode",
        "supervised",
        "--labels",
        str(tmp_path / "ids.tsv"),
    ]
    assert main(["classify", *args, "--segmentation", f"s={d / 'seg.ome.zarr'}"]) == 0
    got = pd.read_parquet(cls)
    assert len(got) == (table["kind"] == "nucleus").sum()
    assert {"prob_a", "prob_b"} <= set(got.columns)
    assert main(["classify", str(out), "--out", str(cls), "--k", "2"]) == 2  # exists
    assert main(["classify", str(out), "--out", str(cls), "--k", "2", "--overwrite"]) == 0
    assert set(pd.read_parquet(cls)["class"]) <= {"0", "1"}


def test_cli_diffusion_mode_trains_once_then_classifies(stores, tmp_path):
    from microdiff.cli import main

    d, _, _, table = stores
    objects = tmp_path / "objects.parquet"
    table.to_parquet(objects)
    ids = table[table["kind"] == "nucleus"][["sample", "id"]].iloc[:6]
    ids.assign(**{"class": ["a", "b"] * 3}).to_csv(tmp_path / "ids.tsv", sep="\t", index=False)
    cls, model = tmp_path / "classes.parquet", tmp_path / "model"
    args = [str(objects), "--out", str(cls), "--mode", "diffusion", "--labels",
            str(tmp_path / "ids.tsv"), "--segmentation", f"s={d / 'seg.ome.zarr'}",
            "--model", str(model), "--steps", "3", "--crop", "16", "--width", "8"]  # fmt: skip
    assert main(["classify", *args, "--images", f"s={d / 'raw.ome.zarr'}"]) == 2  # no norms
    assert not model.exists()
    inputs = ["--images", f"s={d / 'raw.ome.zarr'}", "--norms", f"s={d / 'norm.json'}"]
    assert main(["classify", *args, *inputs]) == 0
    got = pd.read_parquet(cls)
    assert len(got) == (table["kind"] == "nucleus").sum() and set(got["class"]) <= {"a", "b"}
    assert got[["prob_a", "prob_b"]].sum(axis=1).round(6).eq(1).all()
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["task"] == "classify-representation" and "heldout" in cfg  # no labels in it
    stamp = (model / "config.json").stat().st_mtime_ns
    assert main(["classify", *args, *inputs, "--overwrite"]) == 0  # the checkpoint is reused
    assert (model / "config.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(pd.read_parquet(cls), got)


def test_class_examples_are_crops_of_each_class(stores, tmp_path):
    from microdiff.classify.crops import experiment_crops

    d, _, _, table = stores
    nuc = table[table["kind"] == "nucleus"].reset_index(drop=True)
    big = nuc["area_px"] > nuc["area_px"].median()
    classes = nuc[["sample", "kind", "id"]].assign(
        **{"class": np.where(big, "big", "small"), "prob_big": big.astype(float)}
    )
    picks = report.pick_examples(table, classes, n=3, seed=0)
    assert set(picks) == {"big", "small"} and all(len(r) == 3 for r in picks.values())
    sample = nuc["sample"].iloc[0]
    images, norms = {sample: d / "raw.ome.zarr"}, {sample: d / "norm.json"}
    crops = {k: experiment_crops(r.reset_index(drop=True), images, norms, 24)
             for k, r in picks.items()}  # fmt: skip
    # each crop is centred on its nucleus: brighter in the middle than at the corners
    for v in crops.values():
        corners = v[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]].mean(axis=1)
        assert (v[:, 0, 10:14, 10:14].mean(axis=(1, 2)) > corners).all()
    assert report.composite(crops["big"][0]).shape == (24, 24, 3)  # two channels: colour
    assert report.composite(np.zeros((1, 8, 8))).shape == (8, 8)
    fig = report.examples_figure(crops, {"big": int(big.sum()), "small": int((~big).sum())})
    assert [a.get_ylabel().split("\n")[0] for a in fig.axes[::3]] == ["big", "small"]
    report.save(fig, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 1000


def test_class_examples_prefer_crops_inside_the_image():
    """Objects whose example crop would reach past the image border (filled with repeated
    edge pixels) come last: only when a class has too few others."""
    centres = [(5, 50), (50, 50), (50, 95), (30, 30), (70, 70), (60, 40)]  # 3 near a border
    objects = pd.DataFrame({"sample": "s", "kind": "cell", "id": np.arange(1, 7),
                            "centroid_y": [c[0] for c in centres],
                            "centroid_x": [c[1] for c in centres]})  # fmt: skip
    classes = objects[["sample", "kind", "id"]].assign(**{"class": ["a"] * 4 + ["b"] * 2})
    picks = report.pick_examples(objects, classes, n=2, shapes={"s": (3, 100, 100)}, size=24)
    assert sorted(picks["a"]["id"]) == [2, 4]  # the inner two of a's four
    assert sorted(picks["b"]["id"]) == [5, 6]
    few = report.pick_examples(objects, classes, n=3, shapes={"s": (3, 100, 100)}, size=24)
    assert len(few["a"]) == 3 and {2, 4} <= set(few["a"]["id"])  # filled from the border ones
    plain = report.pick_examples(objects, classes, n=4)  # no shapes: any object
    assert len(plain["a"]) == 4


def test_pooled_crops_average_a_wider_window(stores):
    from microdiff.classify.crops import crop_pool, experiment_crops

    d, _, _, table = stores
    nuc = table[table["kind"] == "nucleus"].head(5).reset_index(drop=True)
    images = {s: d / "raw.ome.zarr" for s in nuc["sample"].unique()}
    norms = {s: d / "norm.json" for s in nuc["sample"].unique()}
    wide = experiment_crops(nuc, images, norms, 32)
    pooled = experiment_crops(nuc, images, norms, 16, pool=2)
    n, c = wide.shape[:2]
    want = wide.reshape(n, c, 16, 2, 16, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(pooled, want, rtol=1e-5, atol=1e-6)
    # auto: a window of about 1.5 median diameters; a number as given; no diameters: 1
    sizes = pd.DataFrame({"diameter_px": [36.0, 38.0, 40.0]})
    assert crop_pool(sizes, 32) == 2 and crop_pool(sizes, 16) == 4
    assert crop_pool(sizes.assign(diameter_px=12.0), 32) == 1
    assert crop_pool(sizes, 32, 3) == 3 and crop_pool(pd.DataFrame({"x": [1]}), 32) == 1


def test_class_counts_of_a_plate_have_legible_sample_names():
    """96 samples: every sample's name is drawn, and no two names overlap."""
    import pandas as pd

    wells = [f"plate1_{row}{col:02d}" for row in "ABCDEFGH" for col in range(1, 13)]
    rows = [{"sample": w, "class": k, "count": 5 + i % 7} for i, w in enumerate(wells)
            for k in ("a", "b")]  # fmt: skip
    fig = report.class_counts_figure(pd.DataFrame(rows))
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) == 96
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.y0)
    assert all(a.y1 <= b.y0 + 0.5 for a, b in zip(boxes, boxes[1:]))
