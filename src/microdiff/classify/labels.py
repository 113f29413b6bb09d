"""Labels for the classify stage: point and id label tables matched to segmented objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..tiling import tile_grid


def _point_index(points: pd.DataFrame, cols: Sequence[str], shape) -> tuple[np.ndarray, ...]:
    """Pixel indices of points: pixel i covers [i - 0.5, i + 0.5) (round half up)."""
    return tuple(np.floor(points[c].to_numpy(np.float64) + 0.5).astype(np.int64) for c in cols)


def match_points(
    labels,
    points: pd.DataFrame,
    x_col: str = "x",
    y_col: str = "y",
    class_col: str = "class",
    z_col: str | None = None,
    tile=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Object labels from point annotations: a point labels the object that contains it.

    Coordinates are pixel positions in the label image (x = column, y = row, z = plane), rounded
    to the nearest pixel. Returns `(objects, unmatched)`:

    - `objects`: one row per labelled object, columns `id`, `class`, `n_points` (points inside
      it) and `n_votes` (points of the winning class), sorted by id. An object with points of
      different classes takes the majority class; a tie between the top classes drops it.
    - `unmatched`: the input rows not used, with a `reason`: `outside` (off the image),
      `background` (on label 0), `tie` (object dropped for a tie), `outvoted` (the object took
      another class).

    The label image is read tile by tile, only where points are.
    """
    ndim = labels.ndim
    cols = ([z_col] if ndim == 3 else []) + [y_col, x_col]
    if ndim == 3 and z_col is None:
        raise ValueError("3D labels need a z column for the points (z_col)")
    pts = points.reset_index(drop=True)
    index = _point_index(pts, cols, labels.shape)
    inside = np.all([(i >= 0) & (i < n) for i, n in zip(index, labels.shape)], axis=0)
    ids = np.zeros(len(pts), np.int64)
    if inside.any():
        _, edge = tile_grid(labels, tile, None)
        local = [i[inside] for i in index]
        keys = pd.Series(list(zip(*[i // e for i, e in zip(local, edge)])))
        found = np.zeros(len(keys), np.int64)
        for key, rows in keys.groupby(keys).groups.items():
            lo = [k * e for k, e in zip(key, edge)]
            box = tuple(slice(a, min(a + e, n)) for a, e, n in zip(lo, edge, labels.shape))
            block = np.asarray(labels[box])
            found[rows] = block[tuple(i[rows] - a for i, a in zip(local, lo))]
        ids[inside] = found
    reason = np.where(~inside, "outside", np.where(ids == 0, "background", ""))
    pts = pts.assign(id=ids, reason=reason)
    hit = pts[pts["reason"] == ""]
    votes = hit.groupby(["id", class_col]).size().rename("votes").reset_index()
    votes = votes.sort_values(["id", "votes"], ascending=[True, False], kind="stable")
    top = votes.groupby("id").head(2)
    best = top.groupby("id").nth(0).set_index("id")
    second = top.groupby("id").nth(1).set_index("id")["votes"]
    tie = best.index[best["votes"].to_numpy() == second.reindex(best.index).to_numpy()]
    best = best.drop(index=tie)
    n_points = hit.groupby("id").size()
    objects = pd.DataFrame(
        {
            "id": best.index.to_numpy(np.int64),
            "class": best[class_col].to_numpy(),
            "n_points": n_points.reindex(best.index).to_numpy(np.int64),
            "n_votes": best["votes"].to_numpy(np.int64),
        }
    )
    winner = pts["id"].map(best[class_col])
    is_hit = pts["reason"] == ""
    pts.loc[is_hit & pts["id"].isin(tie), "reason"] = "tie"
    outvoted = is_hit & pts["id"].isin(best.index) & (pts[class_col] != winner)
    pts.loc[outvoted, "reason"] = "outvoted"
    unmatched = pts[pts["reason"] != ""].reset_index(drop=True)
    return objects, unmatched


def read_label_table(path) -> pd.DataFrame:
    """A label table (TSV, or CSV by extension): `class`, and either `id` or `x`, `y` (`z`),
    optionally `sample` (needed when the experiment has more than one sample)."""
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    table = pd.read_csv(path, sep=sep)
    if "class" not in table.columns:
        raise ValueError(f"{path}: label table needs a 'class' column")
    if "id" not in table.columns and not {"x", "y"} <= set(table.columns):
        raise ValueError(f"{path}: label table needs 'id' or 'x' and 'y' columns")
    if "sample" in table.columns:
        table["sample"] = table["sample"].astype(str)
    return table


def object_labels(table: pd.DataFrame, label_images: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled objects (`sample`, `id`, `class`) from a label table; `(labels, unmatched)`.

    `label_images` maps sample -> its instance label image (read lazily, only where points are).
    Rows naming an `id` are taken as they are; rows with coordinates label the object that
    contains the point (`match_points`). A table without `sample` applies to the only sample.
    Rows of samples not in `label_images` are left out (reason `sample`).
    """
    table = table.copy()
    if "sample" not in table.columns:
        if len(label_images) != 1:
            raise ValueError("the label table needs a 'sample' column for several samples")
        table["sample"] = next(iter(label_images))
    known = table["sample"].isin(list(label_images))
    unmatched = [table[~known].assign(reason="sample")]
    table = table[known]
    if "id" not in table.columns:
        table = table.assign(id=np.nan)
    by_id = table[table["id"].notna()]
    labels = [by_id[["sample", "id", "class"]].astype({"id": np.int64})]
    points = table.drop(index=by_id.index)
    for sample, pts in points.groupby("sample", sort=True):
        z = "z" if "z" in pts.columns and pts["z"].notna().all() else None
        found, missed = match_points(label_images[sample], pts, z_col=z)
        labels.append(found[["id", "class"]].assign(sample=sample))
        unmatched.append(missed)
    labels = pd.concat(labels, ignore_index=True)[["sample", "id", "class"]]
    labels = labels.drop_duplicates(["sample", "id"], keep="first")
    return labels.sort_values(["sample", "id"], ignore_index=True), pd.concat(
        unmatched, ignore_index=True
    )


def label_images(segmentations: Mapping, kind: str, ndim: int) -> dict:
    """sample -> the lazy instance label image of `kind` in its `segmentation.ome.zarr`."""
    # imported here: a classify job without a label table never opens a store (zarr, 0.2 s)
    from ..io.segmentation import LABEL_KINDS, segmentation_layers

    name = {v: k for k, v in LABEL_KINDS.items()}.get(kind, kind)
    out = {}
    for sample, path in segmentations.items():
        layers = segmentation_layers(path, ndim)
        if name not in layers:
            raise ValueError(f"{path}: no labels/{name} for objects of kind {kind!r}")
        out[sample] = layers[name]["labels"]
    return out


def stage_labels(path, segmentations: Mapping, kind: str, ndim: int):
    """`(labels, unmatched)` of the label table at `path` for the experiment's segmentations
    (sample -> segmentation.ome.zarr); `(None, None)` without a table."""
    if not path:
        return None, None
    table = read_label_table(path)
    return object_labels(table, label_images(segmentations, kind, ndim))


def demo_label_table(folder, samples: Sequence[str]) -> pd.DataFrame:
    """A point label table from the simulator's truth (`truth/{sample}_objects.csv` under
    `folder`): `sample`, `x`, `y` (`z`) = the true nuclear centre, `class` = its class name."""
    frames = []
    for sample in samples:
        t = pd.read_csv(Path(folder) / "truth" / f"{sample}_objects.csv")
        out = pd.DataFrame({"sample": sample, "x": t["centroid_x"], "y": t["centroid_y"]})
        if "centroid_z" in t.columns:
            out["z"] = t["centroid_z"]
        out["class"] = t["class_name"]
        frames.append(out)
    return pd.concat(frames, ignore_index=True)
