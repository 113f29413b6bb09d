"""Quality metrics: matching-based instance AP (as StarDist defines it) and AUROC.

Instance matching (Schmidt et al. 2018, StarDist `matching`): predicted and true objects are
matched one-to-one, a pair counting only when its IoU is above the threshold; with thresholds
>= 0.5 a pair above threshold is unique, so the matching is unambiguous. Then
AP(t) = TP / (TP + FP + FN).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every true object (rows) with every predicted object (columns), and their ids."""
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"shapes differ: {true.shape} vs {pred.shape}")
    t_ids, t = np.unique(true, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    inter = np.zeros((len(t_ids), len(p_ids)))
    np.add.at(inter, (t.ravel(), p.ravel()), 1)
    area_t, area_p = inter.sum(1, keepdims=True), inter.sum(0, keepdims=True)
    union = area_t + area_p - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    rows = t_ids != 0
    cols = p_ids != 0
    return iou[np.ix_(rows, cols)], t_ids[rows], p_ids[cols]


def match(true: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> dict:
    """One-to-one matching at an IoU threshold: tp, fp, fn, ap, and the matched pairs."""
    iou, t_ids, p_ids = iou_matrix(true, pred)
    pairs = []
    if iou.size:
        cost = -(iou * (iou > threshold))
        r, c = linear_sum_assignment(cost)
        ok = iou[r, c] > threshold
        pairs = [(int(t_ids[i]), int(p_ids[j]), float(iou[i, j])) for i, j in zip(r[ok], c[ok])]
    tp = len(pairs)
    fp, fn = len(p_ids) - tp, len(t_ids) - tp
    denom = tp + fp + fn
    return {"tp": tp, "fp": fp, "fn": fn, "ap": tp / denom if denom else 1.0, "pairs": pairs}


def average_precision(true, pred, thresholds: Sequence[float] = (0.5,)) -> list[float]:
    """AP = TP / (TP + FP + FN) at each IoU threshold (counts summed when given lists of
    images, as StarDist's `matching_dataset` does)."""
    trues = true if isinstance(true, list | tuple) else [true]
    preds = pred if isinstance(pred, list | tuple) else [pred]
    out = []
    for t in thresholds:
        tp = fp = fn = 0
        for a, b in zip(trues, preds):
            m = match(a, b, t)
            tp, fp, fn = tp + m["tp"], fp + m["fp"], fn + m["fn"]
        denom = tp + fp + fn
        out.append(tp / denom if denom else 1.0)
    return out


def false_positive_flags(true: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> dict:
    """Predicted id -> True when it matches no true object at `threshold` (a false positive)."""
    m = match(true, pred, threshold)
    matched = {p for _, p, _ in m["pairs"]}
    ids = np.unique(pred)
    return {int(i): int(i) not in matched for i in ids if i != 0}


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve for `scores` ranking `positive` above the rest (ties half).
    NaN when one class is absent."""
    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
