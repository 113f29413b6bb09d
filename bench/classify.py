"""Object classification: the feature classifier (gradient boosting) against the diffusion
classifier (lowest class-conditional denoising error), on real and simulated data, one table.

    python bench/classify.py --data ../shared/data [--images 412] [--steps 1500] [--threads 2]

- Chula RBC-12 (brightfield blood smears, 13 red-blood-cell classes given as points at cell
  centres): cells are segmented here by a simple threshold + watershed (Otsu on the darkness
  1 - green, holes filled, split by a distance-transform watershed); a point labels the cell
  that contains it (`classify.match_points`); points on background are dropped. Both classifiers
  see the same objects: features from `features.object_table` on the RGB image; crops of 48 px
  around each cell's centroid, halved to 24 px, per-image percentile normalisation. Split by
  image: a seeded 80/20 split of the images.
- Simulator: `microdiff.simulate` experiment with three phenotypes (round, elongated, mitotic),
  objects = the simulator's true nuclei (no segmentation error), features and crops on the
  noisy image; split by sample (image).

Metrics on the held-out images: accuracy and macro-F1 (Chula is heavily imbalanced; the
majority-class baseline is printed beside them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi

from microdiff import classify
from microdiff import diffusion_classifier as dc
from microdiff.features import object_table
from microdiff.normalize import Normalizer


def segment_rbc(rgb: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    dark = 1.0 - ndi.gaussian_filter(rgb[..., 1].astype(np.float32) / 255.0, 1.0)
    fg = ndi.binary_fill_holes(dark > threshold_otsu(dark))
    fg = remove_small_objects(fg, max_size=80)
    dist = ndi.distance_transform_edt(fg)
    peaks = (dist == ndi.maximum_filter(dist, size=15)) & (dist > 5)
    markers, _ = ndi.label(ndi.binary_dilation(peaks, iterations=2))
    return watershed(-dist, markers, mask=fg).astype(np.int32)


def pool2(crops: np.ndarray) -> np.ndarray:
    n, c, h, w = crops.shape
    return crops.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def chula(folder: Path, n_images: int | None):
    """Objects (features + class + image) and their crops, from segmented images."""
    from skimage.io import imread

    names = sorted(p.stem for p in (folder / "images").glob("*.jpg"))[:n_images]
    rows, crops, matched, points = [], [], 0, 0
    for name in names:
        rgb = imread(folder / "images" / f"{name}.jpg")
        pts = pd.read_csv(folder / "points" / f"{name}.csv")
        lab = segment_rbc(rgb)
        objs, _ = classify.match_points(lab, pts)
        points += len(pts)
        matched += objs["n_points"].sum()
        if objs.empty:
            continue
        img = np.moveaxis(rgb, -1, 0).astype(np.float32)
        feats = object_table(lab, img, sample=name, channel_names=["r", "g", "b"])
        feats = feats.merge(objs[["id", "class"]], on="id")
        norm = Normalizer(*np.percentile(img, [1, 99.8], axis=(1, 2)))
        cen = feats[["centroid_y", "centroid_x"]].to_numpy()
        crops.append(pool2(dc.object_crops(img, cen, 48, norm)))
        rows.append(feats)
    table = pd.concat(rows, ignore_index=True)
    table["class"] = table["class"].astype(str)
    info = f"{len(names)} images, {matched}/{points} points in a segmented cell"
    return table, np.concatenate(crops), info


def simulated(n_samples: int, seed: int):
    from microdiff.simulate import simulate_image

    rows, crops = [], []
    for i in range(n_samples):
        sim = simulate_image((512, 512), classes=3, seed=seed + i)
        img = sim.noisy.astype(np.float32)
        feats = object_table(sim.nuclei, img, sample=f"sim{i}", channel_names=sim.channels)
        truth = sim.objects[["id", "class_name"]].rename(columns={"class_name": "class"})
        feats = feats.merge(truth, on="id")
        norm = Normalizer(*np.percentile(img, [1, 99.8], axis=(1, 2)))
        cen = feats[["centroid_y", "centroid_x"]].to_numpy()
        crops.append(dc.object_crops(img, cen, 32, norm))
        rows.append(feats)
    return pd.concat(rows, ignore_index=True), np.concatenate(crops), f"{n_samples} images"


def cached(folder: Path | None, name: str, make):
    """`make()` -> (table, crops, info), kept under `folder/name` and read back when there
    (the segmentation and features of 412 Chula images take half an hour on a shared CPU)."""
    if folder is None:
        return make()
    path = folder / name
    if not (path / "info.txt").exists():
        table, crops, info = make()
        path.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path / "objects.parquet")
        np.save(path / "crops.npy", crops)
        (path / "info.txt").write_text(info)
    info = (path / "info.txt").read_text() + " (cached)"
    return pd.read_parquet(path / "objects.parquet"), np.load(path / "crops.npy"), info


def split_by_image(table: pd.DataFrame, seed: int, test: float = 0.2) -> np.ndarray:
    names = np.array(sorted(table["sample"].unique()))
    rng = np.random.default_rng(seed)
    held = rng.choice(names, max(1, int(round(test * len(names)))), replace=False)
    return table["sample"].isin(held).to_numpy()


def run(dataset, table, crops, info, args, rows):
    is_test = split_by_image(table, args.seed)
    train, test = table[~is_test], table[is_test]
    classes = sorted(table["class"].unique())
    y_test = test["class"].to_numpy()
    majority = train["class"].value_counts().idxmax()
    base = classify.scores(y_test, np.full(len(test), majority), classes)
    common = {"dataset": dataset, "n_train": len(train), "n_test": len(test), "data": info}
    rows.append({**common, "classifier": "majority class", **base, "seconds": 0.0})

    t = time.perf_counter()  # no cross-validation here: the held-out images are the test
    model, _ = classify.train_supervised(
        train, train["class"], seed=args.seed, n_splits=1, max_iter=args.max_iter
    )
    pred = classify.predict(model, test)["class"].to_numpy()
    s = classify.scores(y_test, pred, classes)
    rows.append({**common, "classifier": "features + gradient boosting", **s,
                 "seconds": time.perf_counter() - t})  # fmt: skip

    # the diffusion classifier on a seeded subset of the held-out objects (its cost is
    # classes x levels x trials network evaluations per object); the feature classifier's
    # score on the same subset is printed beside it
    rng = np.random.default_rng(args.seed)
    sub = np.sort(rng.choice(len(test), min(len(test), args.eval), replace=False))
    if len(sub) < len(test):
        s = classify.scores(y_test[sub], pred[sub], classes)
        rows.append({**common, "n_test": len(sub), "classifier": "features + gradient boosting",
                     **s, "seconds": float("nan")})  # fmt: skip
    t = time.perf_counter()
    res = dc.train_classifier(
        crops[~is_test], train["class"].to_numpy(), classes, steps=args.steps, batch=args.batch,
        lr=2e-3, width=args.width, depth=3, seed=args.seed, threads=args.threads,
    )  # fmt: skip
    seconds = time.perf_counter() - t
    cal = np.flatnonzero(~is_test)
    cal = rng.choice(cal, min(len(cal), 300), replace=False)
    cal_y = np.array([classes.index(c) for c in table["class"].to_numpy()[cal]])
    kw = dict(sigmas=dc.noise_levels(args.levels, 0.05, 1.5), trials=args.trials,
              seed=args.seed, threads=args.threads)  # fmt: skip
    t = time.perf_counter()
    errors = dc.denoising_errors(res.denoiser, crops[is_test][sub], len(classes), **kw)
    cal_err = dc.denoising_errors(res.denoiser, crops[cal], len(classes), **kw)
    seconds += time.perf_counter() - t
    nfe = len(classes) * args.levels * args.trials
    counts = train["class"].value_counts().reindex(classes, fill_value=0).to_numpy()
    for rule, prior in (
        ("lowest error", None),
        ("+ class prior", dc.log_prior(counts, len(classes))),
    ):
        temp = dc.calibrate_temperature(cal_err, cal_y, prior)
        best = dc.probabilities(errors, temp, prior).argmax(axis=1)
        s = classify.scores(y_test[sub], np.asarray(classes)[best], classes)
        name = f"diffusion, {rule} ({args.steps} steps, {nfe} NFE/object)"
        rows.append({**common, "n_test": len(sub), "classifier": name, **s, "seconds": seconds})


def dataset(which: str, args, rows: list) -> list:
    """Load (or read back) one data set and score both classifiers on it; the rows."""
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    if which == "chula":
        name = f"chula_{args.images or 'all'}"
        table, crops, info = cached(
            args.cache, name, lambda: chula(args.data / "chula_rbc12", args.images)
        )
        print(f"chula: {info}; {len(table)} objects in {time.perf_counter() - t:.0f} s", flush=True)
        run("chula_rbc12 (13 classes)", table, crops, info, args, rows)
    else:
        name = f"sim_{args.sim_samples}_{args.seed}"
        table, crops, info = cached(
            args.cache, name, lambda: simulated(args.sim_samples, args.seed)
        )
        args.steps = args.sim_steps or args.steps
        run("simulator (3 phenotypes)", table, crops, info, args, rows)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--images", type=int, default=None, help="first N Chula images (all)")
    ap.add_argument("--sim-samples", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1500, help="diffusion training steps")
    ap.add_argument("--sim-steps", type=int, default=None, help="on the simulator (--steps)")
    ap.add_argument("--batch", type=int, default=64, help="diffusion training batch")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--levels", type=int, default=6, help="noise levels of the error estimate")
    ap.add_argument("--trials", type=int, default=1, help="noise draws per level")
    ap.add_argument("--eval", type=int, default=100000, help="held-out objects (diffusion)")
    ap.add_argument("--cache", type=Path, default=None, help="objects and crops kept here")
    ap.add_argument("--max-iter", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", action="store_true", help="both data sets at once (2 processes)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.parallel:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2) as pool:
            jobs = [pool.submit(dataset, w, args, []) for w in ("chula", "sim")]
            rows = [r for j in jobs for r in j.result()]
    else:
        rows = dataset("sim", args, dataset("chula", args, []))
    df = pd.DataFrame(rows)
    cols = ["dataset", "classifier", "n_train", "n_test", "accuracy", "f1_macro", "seconds"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
