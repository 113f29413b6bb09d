"""Example crops per class (or cluster): what each class looks like, at native resolution.

Per class a seeded random draw of its objects (the most probable first where the classifier
gives probabilities), cropped around their centroids from the raw images and normalized with
each sample's statistics: grey for one channel, nuclei magenta and cytoplasm green for two,
RGB for three.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import plt

KEYS = ("sample", "kind", "id")


def pick_examples(
    objects: pd.DataFrame,
    classes: pd.DataFrame,
    n: int = 8,
    seed: int = 0,
    shapes: dict | None = None,
    size: int = 0,
):
    """{class: object rows (with centroids)}: up to `n` per class, most probable first. With
    `shapes` (sample -> level 0 shape, Y and X last) the objects whose `size`-px crop lies
    wholly inside their image are drawn first: a crop that reaches past the border is filled
    with the edge pixel repeated, streaks that are not the object."""
    keys = [k for k in KEYS if k in objects.columns and k in classes.columns]
    prob = [c for c in classes.columns if c.startswith("prob_")]
    df = objects.merge(classes[[*keys, "class", *prob]], on=keys)
    out = {}
    for name, rows in df.groupby("class", sort=True):
        inside = _crop_inside(rows, shapes, size)
        first = rows[inside].sample(min(n, int(inside.sum())), random_state=seed)
        rest = rows[~inside].sample(min(n - len(first), int((~inside).sum())), random_state=seed)
        rows = pd.concat([first, rest])
        col = f"prob_{name}"
        if col in rows.columns:
            rows = rows.sort_values(col, ascending=False, kind="stable")
        out[str(name)] = rows
    return out


def _crop_inside(rows: pd.DataFrame, shapes: dict | None, size: int) -> np.ndarray:
    """Whether each row's `size`-px crop (as `classify.crops.object_crops` cuts it) lies inside
    its image; all True without `shapes`."""
    inside = np.ones(len(rows), bool)
    if not shapes or size <= 0:
        return inside
    half = size // 2
    for axis, col in ((-2, "centroid_y"), (-1, "centroid_x")):
        if col not in rows.columns:
            continue
        extent = np.array([shapes[s][axis] for s in rows["sample"]])
        lo = np.floor(rows[col].to_numpy(np.float64) + 0.5) - half
        inside &= (lo >= 0) & (lo + size <= extent)
    return inside


def composite(crop: np.ndarray) -> np.ndarray:
    """(C, s, s) crop in [-1, 1] -> (s, s[, 3]) picture in [0, 1]."""
    c = np.clip((np.asarray(crop, np.float32) + 1) / 2, 0, 1)
    if c.shape[0] == 1:
        return c[0]
    if c.shape[0] == 2:
        return np.stack([c[0], c[1], c[0]], axis=-1)
    return np.moveaxis(c[:3], 0, -1)


def examples_figure(crops: dict, counts: dict | None = None, px_um: float | None = None):
    """One row per class: its example crops (`crops`: class -> (N, C, s, s) in [-1, 1])."""
    names = list(crops)
    ncol = max([len(v) for v in crops.values()] + [1])
    fig, axes = plt.subplots(max(len(names), 1), ncol, figsize=(1.4 * ncol + 1.2,
                             1.5 * max(len(names), 1)), squeeze=False)  # fmt: skip
    for ax in axes[:, 0]:  # the first column keeps its axes for the class name (ylabel)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    for ax in axes[:, 1:].flat:  # the others show a picture only: no axis to lay out or draw
        ax.set_axis_off()
    for r, name in enumerate(names):
        for j, crop in enumerate(crops[name]):
            pic = composite(crop)
            axes[r, j].imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=1)
        n = (counts or {}).get(name)
        label = f"{name}\n({n} objects)" if n is not None else name
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if not names:
        axes[0, 0].text(0.5, 0.5, "no classified objects", ha="center", va="center")
    size = f", crops of {crops[names[0]].shape[-1]} px" if names else ""
    scale = f" ({px_um:g} um/px)" if px_um else ""
    fig.suptitle(f"example objects per class{size}{scale}", fontsize=10)
    fig.tight_layout()
    return fig
