"""The objects of bench/classify.py: Chula RBC-12 blood smears and the simulator.

Every segmented object is kept (labelled or not: the diffusion model trains on all crops);
`class` is empty where no point labels the object. Crops are raw (uint8 for Chula, float32 for
the simulator), `RAW` px around the centroid; per-image 1 / 99.8 percentiles ride in the table
(`p_lo_<c>`, `p_hi_<c>`) for the normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from microdiff import classify
from microdiff.classify.crops import object_crops
from microdiff.features import object_table
from microdiff.segment.bright import segment_bright

RAW = 64


def _percentiles(img: np.ndarray) -> dict:
    lo, hi = np.percentile(img, [1, 99.8], axis=(1, 2))
    return {
        **{f"p_lo_{i}": v for i, v in enumerate(lo)},
        **{f"p_hi_{i}": v for i, v in enumerate(hi)},
    }


def chula(folder: Path, n_images: int | None = None):
    """(table, crops uint8, info) of the first `n_images` images (all by default)."""
    from skimage.io import imread

    names = sorted((p.stem for p in (folder / "images").glob("*.jpg")), key=int)[:n_images]
    rows, crops, matched, points = [], [], 0, 0
    for name in names:
        rgb = imread(folder / "images" / f"{name}.jpg")
        pts = pd.read_csv(folder / "points" / f"{name}.csv")
        img = np.moveaxis(rgb, -1, 0).astype(np.float32)
        lab = segment_bright(img)
        objs, _ = classify.match_points(lab, pts)
        points += len(pts)
        matched += int(objs["n_points"].sum())
        feats = object_table(lab, img, sample=name, channel_names=["r", "g", "b"])
        if feats.empty:
            continue
        feats = feats.merge(objs[["id", "class"]], on="id", how="left")
        feats = feats.assign(**_percentiles(img))
        cen = feats[["centroid_y", "centroid_x"]].to_numpy()
        crops.append(object_crops(img, cen, RAW).astype(np.uint8))
        rows.append(feats)
    table = pd.concat(rows, ignore_index=True)
    table["class"] = table["class"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    info = f"{len(names)} images, {matched}/{points} points in a segmented cell"
    return table, np.concatenate(crops), info


def simulated(n_samples: int, seed: int):
    """Objects = the simulator's true nuclei (no segmentation error), three phenotypes."""
    from microdiff.simulate import simulate_image

    rows, crops = [], []
    for i in range(n_samples):
        sim = simulate_image((512, 512), classes=3, seed=seed + i)
        img = sim.noisy.astype(np.float32)
        feats = object_table(sim.nuclei, img, sample=f"sim{i}", channel_names=sim.channels)
        truth = sim.objects[["id", "class_name"]].rename(columns={"class_name": "class"})
        feats = feats.merge(truth, on="id").assign(**_percentiles(img))
        cen = feats[["centroid_y", "centroid_x"]].to_numpy()
        crops.append(object_crops(img, cen, RAW))
        rows.append(feats)
    table = pd.concat(rows, ignore_index=True)
    table["class"] = table["class"].astype(str)
    return table, np.concatenate(crops), f"{n_samples} images"


def cached(folder: Path | None, name: str, make):
    """`make()` -> (table, crops, info), kept under `folder/name` and read back when there."""
    if folder is None:
        return make()
    path = Path(folder) / name
    if not (path / "info.txt").exists():
        table, crops, info = make()
        path.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path / "objects.parquet")
        np.save(path / "crops.npy", crops)
        (path / "info.txt").write_text(info)
    info = (path / "info.txt").read_text() + " (cached)"
    return pd.read_parquet(path / "objects.parquet"), np.load(path / "crops.npy"), info


def normalised(table: pd.DataFrame, crops: np.ndarray, size: int, pool: int = 1) -> np.ndarray:
    """float32 crops in about [-1, 1] (per-image percentiles), the central `size * pool` px
    average-pooled by `pool` to `size`."""
    n, c = crops.shape[:2]
    edge = size * pool
    a = (crops.shape[-1] - edge) // 2
    x = crops[:, :, a : a + edge, a : a + edge].astype(np.float32)
    lo = table[[f"p_lo_{i}" for i in range(c)]].to_numpy(np.float32)[:, :, None, None]
    hi = table[[f"p_hi_{i}" for i in range(c)]].to_numpy(np.float32)[:, :, None, None]
    x = 2.0 * (x - lo) / np.maximum(hi - lo, 1e-6) - 1.0
    if pool > 1:
        x = x.reshape(n, c, size, pool, size, pool).mean(axis=(3, 5))
    return np.ascontiguousarray(x, np.float32)
