"""Per-object classification on the feature tables of `microdiff.features`.

Modes (config `classify.mode`):

- `supervised`: a gradient-boosting classifier (scikit-learn HistGradientBoostingClassifier,
  balanced class weights) trained on labelled objects, with cross-validated metrics. Labels come
  per object id or as points (`match_points`: a point labels the object that contains it).
- `diffusion`: a class-conditional diffusion model on object crops (`classify.lowest_error`);
  it needs images, so `classify_objects` (feature tables only) refuses it.
- `unsupervised`: a Gaussian mixture on standardised features when no labels are given.

Every mode returns the same table: the object keys (`sample`, `kind`, `id`, those present),
`class`, and one `prob_<class>` column per class (for clusters: the responsibilities).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

MODES = ("supervised", "diffusion", "unsupervised")
KEYS = ("sample", "kind", "id")
NOT_FEATURES = {"id", "touches_border", "class", "n_points", "n_votes"}
NOT_FEATURE_PREFIXES = ("centroid_", "bbox_", "prob_")
PHYSICAL_SUFFIXES = ("_um", "_um2", "_um3")


def feature_columns(
    df: pd.DataFrame, physical: bool = False, uncertainty: bool = False
) -> list[str]:
    """Numeric columns a classifier should see, in table order.

    Left out: ids, positions (`centroid_*`, `bbox_*`), `touches_border`, earlier predictions
    (`class`, `prob_*`), columns that are all NaN, and by default the segmentation uncertainty
    (it describes the segmenter, not the object; `uncertainty=True` keeps it). Shape columns
    come in pixel units; `physical=True` takes the micrometre ones instead (use it when samples
    differ in pixel size).
    """
    cols = []
    for c in df.select_dtypes(include="number").columns:
        if c in NOT_FEATURES or c.startswith(NOT_FEATURE_PREFIXES):
            continue
        if not uncertainty and c.startswith("uncertainty_"):
            continue
        is_um = c.endswith(PHYSICAL_SUFFIXES)
        has_um = any(f"{c.removesuffix('_px')}{s}" in df for s in PHYSICAL_SUFFIXES)
        if (is_um and not physical) or (physical and c.endswith("_px") and has_um):
            continue
        if df[c].notna().any():
            cols.append(c)
    return cols


def _keys(features: pd.DataFrame) -> pd.DataFrame:
    return features[[k for k in KEYS if k in features.columns]].copy()


def _splits(y: np.ndarray, groups, n_splits: int, seed: int):
    """(scheme, folds): GroupKFold over groups when there are two or more, else stratified."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    if groups is not None and len(np.unique(groups)) >= 2:
        k = min(n_splits, len(np.unique(groups)))
        return "group-kfold", list(GroupKFold(k).split(y, y, groups))
    k = min(n_splits, int(pd.Series(y).value_counts().min()))
    if k < 2:
        return "none", []
    folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y)
    return "stratified-kfold", list(folds)


def _model(seed: int, max_iter: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=max_iter, class_weight="balanced", random_state=seed
    )


def train_supervised(
    features: pd.DataFrame,
    y,
    groups=None,
    seed: int = 0,
    n_splits: int = 5,
    columns: Sequence[str] | None = None,
    max_iter: int = 200,
):
    """Train on labelled objects; returns `(model, cv_metrics)`.

    `features` is the objects table (or any frame); the model sees `columns` (default
    `feature_columns(features)`) and remembers them, so `predict` takes the whole table. With
    `groups` (e.g. the sample of each object) folds never split a group; otherwise folds are
    stratified by class. Metrics are on the pooled out-of-fold predictions: `accuracy`,
    `f1_macro`, `balanced_accuracy`, `confusion_matrix` (rows true, columns predicted, in
    `classes` order), plus `fold_accuracy`, `cv` (the scheme; `none` when a class has fewer than
    two objects and no groups are given, metrics then NaN), `n_objects`. The returned model is
    fitted on all labelled objects.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
    )

    columns = list(feature_columns(features) if columns is None else columns)
    X = features[columns]
    y = np.asarray(y)
    classes = np.unique(y)
    scheme, folds = _splits(y, None if groups is None else np.asarray(groups), n_splits, seed)
    oof = np.empty(len(y), dtype=y.dtype)
    fold_acc = []
    for train, test in folds:
        oof[test] = _model(seed, max_iter).fit(X.iloc[train], y[train]).predict(X.iloc[test])
        fold_acc.append(float(accuracy_score(y[test], oof[test])))
    nan = float("nan")
    metrics = {
        "cv": scheme,
        "n_splits": len(folds),
        "n_objects": len(y),
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "features": columns,
        "accuracy": float(accuracy_score(y, oof)) if folds else nan,
        "f1_macro": float(f1_score(y, oof, average="macro")) if folds else nan,
        "balanced_accuracy": float(balanced_accuracy_score(y, oof)) if folds else nan,
        "confusion_matrix": confusion_matrix(y, oof, labels=classes).tolist() if folds else [],
        "fold_accuracy": fold_acc,
    }
    return _model(seed, max_iter).fit(X, y), metrics


def _output(keys: pd.DataFrame, names, proba: np.ndarray, labels) -> pd.DataFrame:
    out = keys
    out["class"] = np.asarray(labels)[proba.argmax(axis=1)]
    for j, name in enumerate(names):
        out[f"prob_{name}"] = proba[:, j]
    return out


def predict(model, features: pd.DataFrame) -> pd.DataFrame:
    """Class and per-class probabilities (`prob_<class>`) per object, keys carried over."""
    X = features[list(model.feature_names_in_)]
    return _output(_keys(features), model.classes_, model.predict_proba(X), model.classes_)


def _standardised(features: pd.DataFrame, columns) -> np.ndarray:
    X = features[list(columns)].to_numpy(np.float64)
    median = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
    X = np.where(np.isnan(X), median, X)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def cluster(
    features: pd.DataFrame,
    k: int | None = None,
    seed: int = 0,
    k_range: tuple[int, int] = (2, 8),
    columns: Sequence[str] | None = None,
    max_fit: int = 20000,
    variance: float = 0.9,
    max_dims: int = 10,
):
    """Unsupervised classes: a Gaussian mixture on standardised features; `(classes, info)`.

    Missing values take the column median; features are standardised, then reduced by PCA to the
    components holding `variance` of the variance (at most `max_dims`), since many features are
    near-duplicates. `k=None` picks the number of components in `k_range` (inclusive) by lowest
    BIC. At most `max_fit` objects (a seeded random subset) fit the mixture; all are assigned.
    Clusters are numbered by size, 0 the largest; `prob_<k>` are the responsibilities. With
    fewer than three objects every object is in cluster 0 (`k` 1, a `note` says why).
    `info` holds `k`, `bic` per k tried, `dims` and `features`.

    The fits run on one BLAS/OpenMP thread whatever the job's `threads`: on matrices of at most
    `max_dims` columns a second thread only spins (64 samples of 520 x 696, 10,878 objects, k
    2..8: 2.3 CPU s on one thread against 15-17 on two, 7-15x the wall time beside another job).
    """
    # loaded first: threadpool_limits reaches only the libraries already loaded (sklearn's OpenMP)
    import sklearn.cluster  # noqa: F401
    import sklearn.mixture  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _cluster(features, k, seed, k_range, columns, max_fit, variance, max_dims)


def _cluster(features, k, seed, k_range, columns, max_fit, variance, max_dims):
    """`cluster` (its docstring), on the thread pools the caller set."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    columns = list(feature_columns(features) if columns is None else columns)
    if len(features) < 3:  # a mixture of two or more needs three objects: one cluster
        note = f"{len(features)} objects: too few to cluster, all in cluster 0"
        info = {"k": 1, "bic": {}, "dims": 0, "features": columns, "seed": seed, "note": note}
        return _output(_keys(features), [0], np.ones((len(features), 1)), [0]), info
    Z = _standardised(features, columns)
    rng = np.random.default_rng(seed)
    fit = rng.choice(len(Z), max_fit, replace=False) if len(Z) > max_fit else np.arange(len(Z))
    pca = PCA(n_components=min(max_dims, Z.shape[1], len(fit)), random_state=seed).fit(Z[fit])
    dims = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), variance) + 1)
    dims = min(dims, pca.n_components_)
    P = pca.transform(Z)[:, :dims]
    # a mixture of kk components needs more than kk objects; asked for more, the most that fit
    wanted = [k] if k is not None else list(range(k_range[0], k_range[1] + 1))
    ks = [kk for kk in wanted if kk < len(fit)] or [len(fit) - 1]
    note = None
    if ks != wanted:
        note = f"{len(fit)} objects: k tried {ks[0]}-{ks[-1]} instead of {wanted[0]}-{wanted[-1]}"
    fits, bic = {}, {}
    for kk in ks:
        gm = GaussianMixture(kk, reg_covar=1e-3, n_init=2, random_state=seed).fit(P[fit])
        fits[kk], bic[kk] = gm, float(gm.bic(P[fit]))
    best = min(bic, key=bic.get)
    resp = fits[best].predict_proba(P)
    order = np.argsort(-np.bincount(resp.argmax(axis=1), minlength=best), kind="stable")
    resp = resp[:, order]
    names = list(range(best))
    info = {"k": best, "bic": bic, "dims": dims, "features": columns, "seed": seed}
    if note:
        info["note"] = note
    return _output(_keys(features), names, resp, names), info


def classify_objects(
    objects: pd.DataFrame,
    mode: str = "unsupervised",
    object_labels: pd.DataFrame | None = None,
    seed: int = 0,
    k: int | None = None,
    group_col: str | None = "sample",
):
    """Run one mode over an objects table; returns `(classes, info, model)`.

    Supervised: `object_labels` has `id`, `class` and, when the objects have it, `sample`; the
    objects it names are the training set, folds are grouped by `group_col`, and every object
    gets a prediction. `info` holds the CV metrics. Unsupervised: `model` is None.
    """
    if mode not in MODES:
        raise ValueError(f"unknown classify mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "diffusion":
        raise NotImplementedError(
            "the diffusion classifier works on image crops, not feature tables: "
            "use microdiff.classify.lowest_error (the workflow's classify rule does)"
        )
    if mode == "unsupervised":
        classes, info = cluster(objects, k=k, seed=seed)
        return classes, {"mode": mode, **info}, None
    if object_labels is None or object_labels.empty:
        raise ValueError("supervised mode needs a label table (id, class[, sample])")
    on = [c for c in ("sample", "id") if c in objects.columns and c in object_labels.columns]
    train = objects.merge(object_labels[[*on, "class"]], on=on, how="inner")
    groups = train[group_col] if group_col and group_col in train.columns else None
    model, metrics = train_supervised(train, train["class"], groups=groups, seed=seed)
    return predict(model, objects), {"mode": mode, **metrics}, model


def classification_table(objects: pd.DataFrame, kind: str = "nucleus") -> pd.DataFrame:
    """One row per object of `kind` (default nuclei) with the features of its cell (same id,
    columns prefixed `cell_`) when cells were segmented. A table without that kind is used
    whole."""
    if "kind" not in objects.columns or not (objects["kind"] == kind).any():
        return objects.reset_index(drop=True)
    main = objects[objects["kind"] == kind].reset_index(drop=True)
    others = objects[objects["kind"] == "cell"] if kind != "cell" else objects.iloc[:0]
    if others.empty:
        return main
    cols = feature_columns(others)
    add = others[["sample", "id", *cols]].rename(columns={c: f"cell_{c}" for c in cols})
    return main.merge(add, on=["sample", "id"], how="left")


def scores(y_true, y_pred, classes: Sequence) -> dict:
    """accuracy, macro-F1, balanced accuracy and the confusion matrix (rows true, columns
    predicted, in `classes` order) of one set of predictions; NaN / [] when empty."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        nan = float("nan")
        return {"accuracy": nan, "f1_macro": nan, "balanced_accuracy": nan, "confusion_matrix": []}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro")),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(classes)).tolist(),
    }


def classify_experiment(
    objects: pd.DataFrame,
    params: Mapping,
    labels: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict, object]:
    """The feature-based modes over an experiment's objects table; `(classes, info, model)`.

    `params` is the config's `classify` section (`mode`, `kind`, `seed`, `supervised`,
    `unsupervised`); `labels` the labelled objects (`sample`, `id`, `class`) for supervised
    mode. The table classified is `classification_table(objects, kind)`.
    """
    mode, seed = params.get("mode", "unsupervised"), int(params.get("seed", 0))
    table = classification_table(objects, params.get("kind", "nucleus"))
    if table.empty:  # nothing segmented: empty outputs, said in the metrics
        keys = _keys(table).assign(**{"class": pd.Series(dtype=str)})
        return keys, {"mode": mode, "n_objects": 0, "note": "no objects to classify"}, None
    if mode == "unsupervised":
        un = dict(params.get("unsupervised") or {})
        classes, info = cluster(
            table, k=un.get("k"), seed=seed, k_range=(un.get("k_min", 2), un.get("k_max", 8))
        )
        return classes, {"mode": mode, "n_objects": len(table), **info}, None
    if mode != "supervised":
        raise ValueError(f"classify_experiment handles supervised/unsupervised, not {mode!r}")
    if labels is None or labels.empty:
        raise ValueError("supervised mode needs labelled objects: no label matched an object")
    sup = dict(params.get("supervised") or {})
    train = table.merge(labels[["sample", "id", "class"]], on=["sample", "id"], how="inner")
    model, metrics = train_supervised(
        train,
        train["class"].astype(str),
        groups=train["sample"],
        seed=seed,
        n_splits=sup.get("n_splits", 5),
        max_iter=sup.get("max_iter", 200),
    )
    info = {"mode": mode, "method": "HistGradientBoostingClassifier", "n_labelled": len(train)}
    return predict(model, table), {**info, **metrics}, model


def spatial_ndim(objects: pd.DataFrame) -> int:
    """2 or 3, from the objects table's centroid columns."""
    return 3 if "centroid_z" in objects.columns else 2
