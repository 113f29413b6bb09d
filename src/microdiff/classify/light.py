"""The light classifier the `diffusion` mode's representation method fits on an embedding, on
the morphology features and crop descriptors, or on both side by side: logistic regression or an
RBF support vector machine on standardised columns, the model, its C and the class weights
(balanced, square root of balanced, or none) chosen on a validation split by macro-F1. No torch:
scikit-learn only, imported on use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """Per-row weights (n / (k n_class)) ** power: 1 balances the classes, 0 leaves them."""
    names, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    return (len(y) / (len(names) * counts[inverse])) ** float(power)


WEIGHTINGS = {"balanced": 1.0, "sqrt-balanced": 0.5, None: 0.0}


def fit_light(
    X: np.ndarray,
    y: np.ndarray,
    validation: np.ndarray,
    seed: int = 0,
    cs: Sequence[float] = (0.03, 0.1, 0.3, 1.0),
    weights: Sequence[str | None] = ("balanced", "sqrt-balanced", None),
    svm_cs: Sequence[float] = (3.0, 10.0, 30.0),
    probability: bool = False,
):
    """A light classifier on standardised X; `(model, choice)`.

    Candidates: logistic regression (inverse regularisation C in `cs`) and an RBF support
    vector machine (C in `svm_cs`, gamma 1 / (columns x variance); `svm_cs=()` leaves it out),
    each under every class weighting in `weights` (`WEIGHTINGS`: balanced, its square root,
    none). `validation` (boolean) marks the rows that choose the candidate by macro-F1; the
    model is then refitted on all rows with the choice (`probability`: an SVM with Platt
    probabilities, for `predict_proba`, fitted on up to 3 folds; with a class of one object
    the SVM is left out; logistic has probabilities anyway)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    def fit(rows, kind, c, w, proba=False):
        if kind == "svm":
            est = SVC(C=c, gamma="scale", random_state=seed)
            if proba:  # Platt scaling, fitted on held-out folds; the SVM refitted on all rows
                est = CalibratedClassifierCV(est, cv=min(3, folds), ensemble=False)
        else:
            est = LogisticRegression(C=c, max_iter=300, random_state=seed)
        sw = class_weights(y[rows], WEIGHTINGS[w])
        pipe = make_pipeline(StandardScaler(), est)
        return pipe.fit(X[rows], y[rows], **{f"{pipe.steps[-1][0]}__sample_weight": sw})

    X, y, val = np.asarray(X, np.float64), np.asarray(y), np.asarray(validation, bool)
    folds = int(np.unique(y, return_counts=True)[1].min()) if len(y) else 0
    if probability and folds < 2:  # Platt scaling needs two objects of every class
        svm_cs = ()
    grid = [("logistic", c) for c in cs] + [("svm", c) for c in svm_cs]
    best = -1.0
    choice = {"model": grid[-1][0], "C": grid[-1][1], "class_weight": weights[0],
              "validation_f1_macro": None}  # fmt: skip
    if val.any() and (~val).any() and len(np.unique(y[~val])) >= 2:
        for w in weights:
            for kind, c in grid:
                pred = fit(~val, kind, c, w).predict(X[val])
                f1 = float(f1_score(y[val], pred, average="macro"))
                if f1 > best:
                    best = f1
                    choice = {"model": kind, "C": c, "class_weight": w, "validation_f1_macro": f1}
    everything = np.ones(len(y), bool)
    return fit(
        everything, choice["model"], choice["C"], choice["class_weight"], probability
    ), choice


def joined(embedding: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Embedding and morphology features side by side (missing features: column median)."""
    f = np.asarray(features, np.float64)
    med = np.nanmedian(f, axis=0) if len(f) else np.zeros(f.shape[1])
    f = np.where(np.isnan(f), np.nan_to_num(med), f)
    return np.concatenate([np.asarray(embedding, np.float64), f], axis=1)
