import numpy as np
import pandas as pd
import pytest

from microdiff.classify import (
    classify_objects,
    cluster,
    experiment_summary,
    feature_columns,
    load_model,
    match_points,
    predict,
    save_model,
    summarize,
    train_supervised,
)


def labels_image():
    lab = np.zeros((40, 50), np.int32)
    lab[2:10, 2:10] = 1
    lab[2:10, 20:30] = 2
    lab[20:30, 5:15] = 3
    lab[20:30, 30:45] = 4
    return lab


def test_match_points_background_outside_conflicts():
    points = pd.DataFrame(
        {
            "x": [5, 6, 25, 25.4, 27, 10, 35, 36, 0, 80, -1],
            "y": [5, 6, 5, 6, 7, 25, 25, 26, 0, 5, 3],
            "class": ["a", "a", "b", "b", "c", "c", "a", "b", "a", "b", "a"],
        }
    )
    objects, unmatched = match_points(labels_image(), points, tile=16)
    assert objects.to_dict("list") == {
        "id": [1, 2, 3],
        "class": ["a", "b", "c"],
        "n_points": [2, 3, 1],
        "n_votes": [2, 2, 1],
    }
    reasons = dict(zip(unmatched["x"], unmatched["reason"]))
    assert reasons == {
        27: "outvoted",
        35: "tie",
        36: "tie",
        0: "background",
        80: "outside",
        -1: "outside",
    }
    assert list(unmatched.columns[:3]) == ["x", "y", "class"]


def test_match_points_rounds_to_nearest_pixel_and_3d():
    lab = np.zeros((4, 10, 10), np.int32)
    lab[2, 3:5, 3:5] = 9
    pts = pd.DataFrame({"z": [2, 1], "y": [2.6, 3], "x": [4.4, 3], "class": [1, 2]})
    objects, unmatched = match_points(lab, pts, z_col="z")
    assert objects["id"].tolist() == [9] and objects["class"].tolist() == [1]
    assert unmatched["reason"].tolist() == ["background"]


def blobs(n=120, seed=0, shift=4.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(["small", "large"], n // 2)
    X = rng.normal(size=(n, 4))
    X[y == "large", :2] += shift
    df = pd.DataFrame(X, columns=["area_px", "intensity_mean_dna", "texture_energy_dna", "noise"])
    df.insert(0, "id", np.arange(1, n + 1))
    df.insert(0, "sample", np.tile(["s1", "s2", "s3"], n // 3))
    df["centroid_y"] = rng.uniform(0, 100, n)
    df["bbox_y0"] = 0
    df["uncertainty_mean"] = 0.1
    return df, y


def test_feature_columns_excludes_ids_positions_and_nan():
    df, _ = blobs()
    df["area_um2"] = df["area_px"] * 0.25
    df["perimeter_px"] = np.nan
    df["touches_border"] = False
    assert feature_columns(df) == ["area_px", "intensity_mean_dna", "texture_energy_dna", "noise"]
    assert "area_um2" in feature_columns(df, physical=True)
    assert "area_px" not in feature_columns(df, physical=True)
    assert "uncertainty_mean" in feature_columns(df, uncertainty=True)


def test_supervised_cv_on_separable_features():
    df, y = blobs()
    model, metrics = train_supervised(df, y, groups=df["sample"], seed=0, max_iter=50)
    assert metrics["cv"] == "group-kfold" and metrics["n_splits"] == 3
    assert metrics["accuracy"] > 0.9 and metrics["balanced_accuracy"] > 0.9
    assert metrics["f1_macro"] > 0.9
    assert np.sum(metrics["confusion_matrix"]) == len(y)
    out = predict(model, df)
    assert list(out.columns) == ["sample", "id", "class", "prob_large", "prob_small"]
    assert np.allclose(out[["prob_large", "prob_small"]].sum(axis=1), 1.0)
    assert (out["class"].to_numpy() == y).mean() > 0.95
    _, strat = train_supervised(df, y, seed=0, max_iter=50)
    assert strat["cv"] == "stratified-kfold" and strat["accuracy"] > 0.9


def test_cluster_recovers_two_blobs():
    df, y = blobs(shift=8.0)
    out, info = cluster(df, seed=0, k_range=(1, 4))
    assert info["k"] == 2
    assert list(out.columns) == ["sample", "id", "class", "prob_0", "prob_1"]
    agree = pd.crosstab(out["class"], y).to_numpy()
    assert agree.max(axis=1).sum() / len(y) > 0.95
    fixed, info = cluster(df, k=3, seed=0)
    assert info["k"] == 3 and fixed["class"].nunique() <= 3


def test_summary_fractions_sum_to_one_per_sample():
    classes = pd.DataFrame(
        {"sample": ["a", "a", "a", "b", "b"], "class": ["x", "y", "x", "x", "x"]}
    )
    per = summarize(classes)
    assert per.groupby("sample")["fraction"].sum().tolist() == [1.0, 1.0]
    b_y = per[(per["sample"] == "b") & (per["class"] == "y")]
    assert b_y["count"].item() == 0
    exp = experiment_summary(classes).set_index("class")
    assert exp.loc["x", "count"] == 4 and exp.loc["x", "fraction"] == pytest.approx(0.8)
    assert exp.loc["x", "fraction_mean"] == pytest.approx((2 / 3 + 1) / 2)


def test_classify_objects_modes_and_model_roundtrip(tmp_path):
    df, y = blobs()
    labels = df[["sample", "id"]].assign(**{"class": y}).iloc[::2]
    classes, info, model = classify_objects(df, "supervised", labels, seed=0)
    assert len(classes) == len(df) and info["accuracy"] > 0.9
    save_model(model, tmp_path / "model.joblib", {"seed": 0})
    again = load_model(tmp_path / "model.joblib")
    pd.testing.assert_frame_equal(predict(again, df), classes)
    (tmp_path / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="hash"):
        load_model(tmp_path / "model.joblib")
    with pytest.raises(NotImplementedError):
        classify_objects(df, "diffusion")
    _, info, none = classify_objects(df, "unsupervised", k=2)
    assert none is None and info["k"] == 2


@pytest.mark.parametrize("n", [1, 2])
def test_cluster_one_or_two_objects_is_one_cluster_with_a_note(n):
    objects = pd.DataFrame(
        {
            "sample": "s",
            "id": np.arange(1, n + 1),
            "area_px": [10.0, 30.0][:n],
            "x_f": [1.0, 2.0][:n],
        }
    )
    classes, info = cluster(objects)
    assert list(classes["class"]) == [0] * n and np.allclose(classes["prob_0"], 1.0)
    assert info["k"] == 1 and "too few to cluster" in info["note"]
    out, info2, _ = classify_objects(objects, mode="unsupervised")
    assert len(out) == n and info2["mode"] == "unsupervised"


@pytest.mark.parametrize("k, k_range", [(5, (2, 8)), (None, (4, 6))])
def test_cluster_asked_for_more_clusters_than_objects_allow(k, k_range):
    rng = np.random.default_rng(0)
    objects = pd.DataFrame(
        {"sample": "s", "id": [1, 2, 3, 4], "area_px": rng.normal(20, 5, 4), "x_f": [1.0, 2, 8, 9]}
    )
    classes, info = cluster(objects, k=k, k_range=k_range)
    assert len(classes) == 4 and info["k"] <= 3
    assert "instead of" in info["note"]
