"""How far synthetic images are from real ones: a classifier trained to tell them apart.

Crops of one size are cut at random from real images (held back from the generator's training)
and from synthetic images; each crop is described by intensity, gradient, band-pass and
power-spectrum statistics, and gradient-boosted trees are trained and tested with k-fold
cross-validation grouped by image. The held-out accuracy is the measure: 0.5 means
indistinguishable (to this classifier), 1.0 means every crop is told apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..tiling import sample_patch_boxes


def random_crops(images: Sequence[np.ndarray], n: int, size: int, rng):
    """`n` crops (Y, X) of channel 0, images picked in turn, boxes from the tiling module;
    returns the crops and the index of the image each came from."""
    out, src = [], []
    for k in range(n):
        img = np.asarray(images[k % len(images)], np.float32)
        img = img[0] if img.ndim == 3 else img
        box = sample_patch_boxes(img.shape, size, 1, rng)[0]
        out.append(img[box.slices])
        src.append(k % len(images))
    return out, np.array(src)


def crop_features(crop: np.ndarray) -> np.ndarray:
    c = np.asarray(crop, np.float64)
    q = np.percentile(c, [1, 5, 25, 50, 75, 95, 99])
    gy, gx = ndi.sobel(c, 0), ndi.sobel(c, 1)
    grad = np.hypot(gy, gx)
    lap = np.abs(ndi.laplace(c))
    dogs = [np.abs(ndi.gaussian_filter(c, s) - ndi.gaussian_filter(c, 2 * s)).mean()
            for s in (0.5, 1, 2, 4)]  # fmt: skip
    f = np.abs(np.fft.fftshift(np.fft.fft2(c - c.mean()))) ** 2
    yy, xx = np.indices(c.shape)
    r = np.hypot(yy - c.shape[0] / 2, xx - c.shape[1] / 2) / (min(c.shape) / 2)
    bands = [np.log1p(f[(r >= a) & (r < b)].mean()) for a, b in
             zip([0, 0.05, 0.1, 0.2, 0.4, 0.7], [0.05, 0.1, 0.2, 0.4, 0.7, 1.0])]  # fmt: skip
    return np.array([*q, c.mean(), c.std(), grad.mean(), grad.std(), lap.mean(), *dogs, *bands])


def realism(
    real: Sequence[np.ndarray],
    synthetic: Sequence[np.ndarray],
    crops: int = 200,
    size: int = 64,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """Cross-validated accuracy of telling real from synthetic crops (0.5: indistinguishable).

    Folds are grouped by image (StratifiedGroupKFold), so the classifier is always tested on
    crops of images it never saw: it must learn real vs synthetic, not which image a crop is
    from. Folds: at most the number of images on either side."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score

    rng = np.random.default_rng(seed)
    ca, ga = random_crops(real, crops, size, rng)
    cb, gb = random_crops(synthetic, crops, size, rng)
    x = np.array([crop_features(c) for c in ca + cb])
    y = np.array([0] * len(ca) + [1] * len(cb))
    groups = np.concatenate([ga, gb + len(real)])
    folds = max(2, min(folds, len(real), len(synthetic)))
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    acc = cross_val_score(clf, x, y, groups=groups, cv=cv, scoring="accuracy")
    return {"accuracy": float(acc.mean()), "std": float(acc.std()), "crops": len(x), "size": size,
            "folds": folds}  # fmt: skip
