"""Object classification on real and simulated data, one table: morphology features alone, with
crop descriptors, the diffusion representation alone, joined, and the lowest-error diffusion rule.

    python bench/classify.py --data ../shared/data --which chula --cache /tmp/cache [--steps 1500]

- Chula RBC-12 (brightfield blood smears, 13 red-blood-cell classes as points at cell centres):
  cells segmented by `segment.bright` (threshold + watershed, the workflow's `bright` option);
  a point labels the cell that contains it. Split by image: a seeded 20% of the 412 images is
  held back (test); of the rest, 20% of the images is the validation part that chooses the
  light classifier (`light.fit_light`: logistic or RBF SVM, C, class weighting); the
  representation trains (no labels) on the crops of the training and validation images only.
- Simulator: `microdiff.simulate`, three phenotypes, objects = true nuclei, split by image.

`--cache` keeps the objects and crops, the representation's checkpoint and the embedding (of the
labelled objects, the only ones a classifier uses here) with its measured time; a rerun with the
same settings is classifier fits only. Rows: accuracy, macro-F1, per-class F1 (test), s per
1000 objects (inference, 1 thread; for the embedding rows the embedding's time) and NFE per
object. The embedding rows choose among SVMs only (a logistic fit on 600+ columns takes minutes
on one thread). `--le-steps 0` (the default) skips the lowest-error rule (macro-F1 0.30 at 78
NFE per cell, issue 20); `--boosting` adds the features + gradient-boosting row.

Measured (issue 20, 2 shared CPU cores, 1 torch thread; 2938 held-back cells of 83 images;
representation 1500 steps, batch 32, width 16, sigmas 0.1 0.3, views 1, trained in 568 s; 2 NFE
per object; the rows' s per 1000 objects were measured under load from two other jobs;
`python bench/classify.py --data ../shared/data --which chula --cache /tmp/classify2`).
The descriptors include the rim spectrum (`crops.rim_spectrum`, the angular swing of intensity
around the cell's rim: burr cells' spicules); the embedding pools each block's output in three
rings of the crop (`represent.ring_pool`):

    classifier (chosen on validation)                     accuracy  macro-F1  val. macro-F1
    features (logistic only, sqrt-balanced, C 1)             0.815     0.713      0.644
    features (SVM, sqrt-balanced, C 10)                      0.840     0.749      0.686
    features + descriptors (SVM, unweighted, C 10)           0.880     0.804      0.773
    embedding, rings (SVM, unweighted, C 10)                 0.830     0.719      0.658
    embedding, rings + features + descriptors (SVM, bal.)    0.871     0.780      0.727
    before the rim spectrum: features + descriptors 0.868 / 0.782 (val. 0.763), joined with
    the rings 0.859 / 0.763; the embedding as a whole-crop mean 0.758 / 0.621, joined 0.846 /
    0.741. Earlier runs (logistic): features + rings 0.840 / 0.755, embedding + features 0.836 /
    0.746; gradient boosting on features 0.809 / 0.693; lowest error 0.316 / 0.302.

Simulator (8 samples, 124 held-back nuclei; `--which sim --cache /tmp/classify_sim --le-steps
1500`): features alone 1.000 macro-F1, features + descriptors 0.992, embedding alone and joined
0.976 (2 NFE, 9 s per 1000), lowest error 0.577 (1500 steps, 18 NFE, 66 s per 1000).

Per-class F1 of the best row (classes 0-12): 0.85 0.85 0.64 0.94 0.91 0.74 0.93 0.75 0.68 0.82
0.60 0.74 1.00; the rim spectrum lifted burr cells (8) from 0.53 to 0.68. The descriptors
(`crops.descriptors`: ring profile, profile scaled to the cell, size and intensity relative to
the image's median cell, roundness, outline harmonics, rim spectrum) and the SVM carry the gain.
The ring-pooled embedding, joined, is above the features alone (0.780 against 0.749) but below
features + descriptors (0.804): under the SVM its 1,728 columns dilute the kernel, and the
validation choice (`light.fit_light`, the workflow's) leaves it out on Chula. Late fusion,
PCA-reduced or down-weighted embedding columns, and fine-tuning the representation's network
as a classifier did not do better (issue 20's notes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
import classify_data as cd  # noqa: E402

from microdiff import classify  # noqa: E402
from microdiff.classify import light as lc  # noqa: E402
from microdiff.classify import lowest_error as le  # noqa: E402
from microdiff.classify import represent as rp  # noqa: E402
from microdiff.classify.crops import descriptors  # noqa: E402


def split(table: pd.DataFrame, seed: int, share: float = 0.2) -> np.ndarray:
    names = np.array(sorted(table["sample"].unique()))
    held = np.random.default_rng(seed).choice(names, max(1, round(share * len(names))), False)
    return table["sample"].isin(held).to_numpy()


def per_class(y, pred, classes) -> str:
    from sklearn.metrics import f1_score

    f = f1_score(y, pred, labels=classes, average=None, zero_division=0)
    return " ".join(f"{c}:{v:.2f}" for c, v in zip(classes, f))


def representation(train_x, x, args, cache: Path | None, tag: str):
    """(embedding of x, seconds per object): the representation trained on `train_x` (no
    labels), then x embedded; both kept under `cache` when given and read back next time."""
    key = f"{tag}_rep_s{args.steps}_b{args.batch}_w{args.width}_seed{args.seed}"
    ckpt = cache / f"{key}.pt" if cache else None
    if ckpt is not None and ckpt.exists():
        den, _ = rp.load_representation(ckpt)
    else:
        t0 = time.perf_counter()
        res = rp.train_representation(train_x, steps=args.steps, batch=args.batch,
                                      width=args.width, seed=args.seed, threads=1,
                                      checkpoint_path=ckpt)  # fmt: skip
        den = res.denoiser
        print(f"representation trained in {time.perf_counter() - t0:.0f} s, "
              f"loss {np.mean(res.losses[-50:]):.4f}", flush=True)  # fmt: skip
    sig = tuple(args.sigmas)
    emb = (
        cache / f"{key}_emb_{'_'.join(map(str, sig))}_v{args.views}_rings_n{len(x)}.npz"
        if cache
        else None
    )
    if emb is not None and emb.exists():
        z = np.load(emb)
        return z["E"], float(z["per_obj"])
    t = time.perf_counter()
    E = rp.embed(den, x, sig, views=args.views, seed=args.seed, threads=1)
    per_obj = (time.perf_counter() - t) / max(len(x), 1)
    if emb is not None:
        np.savez(emb, E=E, per_obj=per_obj)
    return E, per_obj


def run(name, table, crops, args):
    rows = []
    test = split(table, args.seed)
    val = split(table[~test], args.seed + 1) if (~test).sum() else np.zeros(0, bool)
    is_val = np.zeros(len(table), bool)
    is_val[np.flatnonzero(~test)[val]] = True
    lab = (table["class"] != "").to_numpy()
    tr, te = lab & ~test, lab & test
    classes = sorted(table.loc[lab, "class"].unique(), key=lambda c: (len(c), c))
    y = table["class"].to_numpy()
    x = cd.normalised(table, crops, args.crop, args.pool)
    cols = classify.feature_columns(table)
    F = table[cols].to_numpy(np.float64)
    FD = np.concatenate([F, descriptors(table, x, 1.0 / args.pool)], axis=1)  # what join adds
    print(f"{name}: {lab.sum()} labelled of {len(table)}; train {tr.sum()} test {te.sum()}",
          flush=True)  # fmt: skip

    def row(what, pred, seconds, nfe, n):
        s = classify.scores(y[te][: len(pred)], pred, classes)
        rows.append({"dataset": name, "classifier": what, "n_test": len(pred),
                     "accuracy": s["accuracy"], "f1_macro": s["f1_macro"],
                     "s_per_1000": 1000 * seconds / max(n, 1), "nfe": nfe,
                     "per_class_f1": per_class(y[te][: len(pred)], pred, classes)})  # fmt: skip
        print(rows[-1], flush=True)

    def light(what, X, per_obj=0.0, nfe=0, **kw):
        X = lc.joined(X[:, :0], X)  # missing values: column median
        m, c = lc.fit_light(X[tr], y[tr], is_val[tr], seed=args.seed, **kw)
        t = time.perf_counter()
        pred = m.predict(X[te])
        sec = per_obj * te.sum() + time.perf_counter() - t
        print(f"  {what}: chose {c}", flush=True)
        row(f"{what} (+ {c['model']}, {c['class_weight']}, C {c['C']})", pred, sec, nfe, te.sum())

    if args.boosting:
        model, _ = classify.train_supervised(
            table[tr], y[tr], seed=args.seed, n_splits=1, columns=cols, max_iter=200
        )
        t = time.perf_counter()
        pred = classify.predict(model, table[te])["class"].to_numpy()
        row("features + gradient boosting", pred, time.perf_counter() - t, 0, te.sum())
    light("features (logistic only)", F, svm_cs=())
    light("features", F)
    light("features + descriptors", FD)

    # self-supervised on every crop of the non-test images, labelled or not
    E_lab, per_obj = representation(x[~test], x[lab], args, args.cache, name)
    E = np.zeros((len(x), E_lab.shape[1]), np.float32)
    E[lab] = E_lab  # only the labelled objects are embedded: the others play no part here
    nfe = len(args.sigmas) * args.views
    # the logistic grid on hundreds of embedding columns costs minutes a fit on one thread:
    # these rows choose among SVMs only (logistic rows: the docstring's earlier runs)
    svm_only = dict(cs=(), weights=(None, "balanced"))
    light("diffusion embedding", E, per_obj, nfe, **svm_only)
    light("diffusion embedding + features + descriptors", lc.joined(E, FD), per_obj, nfe,
          **svm_only)  # fmt: skip
    if args.le_steps:
        sub = np.flatnonzero(te)[: args.le_eval]
        r = le.train_classifier(x[tr], y[tr], classes, steps=args.le_steps, batch=args.batch,
                                lr=2e-3, width=args.width, seed=args.seed, threads=1)  # fmt: skip
        kw = dict(sigmas=le.noise_levels(6, 0.05, 1.5), trials=1, seed=args.seed, threads=1)
        t = time.perf_counter()
        err = le.denoising_errors(r.denoiser, x[sub], len(classes), **kw)
        sec = time.perf_counter() - t
        pred = np.asarray(classes)[err.argmin(axis=1)]
        row(f"diffusion lowest error ({args.le_steps} steps)", pred, sec, 6 * len(classes),
            len(sub))  # fmt: skip
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--which", choices=("chula", "sim"), default="chula")
    ap.add_argument("--images", type=int, default=None, help="first N Chula images (all)")
    ap.add_argument("--sim-samples", type=int, default=8)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--pool", type=int, default=2, help="crop = central crop*pool px, pooled")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--sigmas", type=float, nargs="+", default=list(rp.SIGMAS))
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--le-steps", type=int, default=0, help="lowest-error model (0: skip)")
    ap.add_argument("--boosting", action="store_true", help="also the gradient-boosting row")
    ap.add_argument("--le-eval", type=int, default=300, help="test objects for lowest error")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.which == "chula":
        make = lambda: cd.chula(args.data / "chula_rbc12", args.images)  # noqa: E731
        table, crops, info = cd.cached(args.cache, f"chula_{args.images or 'all'}", make)
        name = "chula_rbc12"
    else:
        make = lambda: cd.simulated(args.sim_samples, args.seed)  # noqa: E731
        table, crops, info = cd.cached(args.cache, f"sim_{args.sim_samples}_{args.seed}", make)
        name = "simulator"
    print(info, flush=True)
    df = pd.DataFrame(run(name, table, crops, args))
    cols = ["dataset", "classifier", "n_test", "accuracy", "f1_macro", "s_per_1000", "nfe"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(df[["classifier", "per_class_f1"]].to_string(index=False))


if __name__ == "__main__":
    main()
