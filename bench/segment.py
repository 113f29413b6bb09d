"""Segmentation benchmark: Otsu + distance-transform watershed, a single-pass UNet of the same
size trained on the same data, and microdiff (K = 1 and the default K), side by side.

    python bench/segment.py --data ../shared/data [--steps 3000 --device cuda]
    python bench/segment.py --cells --sample-steps 1    # the cell rows (bench/segment_cells.py)
    python bench/segment.py --model src/microdiff/models/segment_nuclei --no-unet --dsb \
        --only dsb_fluo dsb_colour simulated bbbc039 --sample-steps 1 --threads 1 --device cpu

The last (DSB2018 validation part, every 5th image by name, split by the colour conversion
`segment.prepare` picks: 50 fluorescence, 13 colour/brightfield; about 25 min on a shared CPU),
with `--scale auto` (the workflow's default) and, for colour images, haematoxylin on every
bright background (inverted luminance for grey ones before: colour 0.194 / 0.293 AP@0.5):

| data | method | AP@0.5 | mAP.5:.9 | AUROC std, 1-consistency | NFE |
|---|---|---|---|---|---|
| dsb_fluo | otsu+watershed | 0.600 | 0.365 | - | 0 |
| dsb_fluo | microdiff K=4 | 0.738 | 0.507 | 0.727, 0.602 | 4 |
| dsb_colour | otsu+watershed | 0.215 | 0.114 | - | 0 |
| dsb_colour | microdiff K=4 | 0.332 | 0.203 | 0.827, 0.672 | 4 |
| simulated | otsu+watershed | 0.845 | 0.613 | - | 0 |
| simulated | microdiff K=4 | 0.822 | 0.666 | 0.759, 0.848 | 4 |
| bbbc039 | otsu+watershed | 0.746 | 0.606 | - | 0 |
| bbbc039 | microdiff K=4 | 0.902 | 0.817 | 0.827, 0.664 | 4 |

That table has the samples' objects at full resolution (`--consistency-grid 1`). On one set of
the shipped model's maps per data set (K = 4, scale auto; issue 15), grid 2 / 1: AP@0.5 bbbc039
0.899 / 0.899, dsb_fluo 0.744 / 0.746, dsb_colour 0.332 / 0.333; AUROC of 1 - consistency
0.687 / 0.664, 0.615 / 0.606, 0.674 / 0.672.

Data sets: bbbc039_nuclei (split by image: even index in sorted order trains, odd tests) and
simulator ground truth (simulated nuclei; separate seeds for train and test). Columns: AP at IoU
0.5 and mean AP over IoU 0.5..0.9 (StarDist's matching: AP = TP / (TP + FP + FN), counts summed
over the test images), AUROC of per-object uncertainty separating false from true positives
(microdiff: mean pixel std over the K samples, and 1 - consistency; UNet: 1 - mean probability),
seconds per megapixel (inference + instances) and network evaluations per pixel.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from train_default_segment import dsb2018_pairs, simulated_pairs  # noqa: E402

from microdiff import diffusion as dm  # noqa: E402
from microdiff.metrics import auroc, average_precision, false_positive_flags  # noqa: E402
from microdiff.normalize import percentile_norm  # noqa: E402
from microdiff.segment import instances, scale  # noqa: E402
from microdiff.segment import model as segmodel  # noqa: E402
from microdiff.segment.model import (  # noqa: E402
    Model,
    build,
    nfe,
    predict,
    shard_channels,
    train_model,
)
from microdiff.segment.prepare import LUMINANCE  # noqa: E402
from microdiff.segment.represent import PairSource  # noqa: E402
from microdiff.segment.stage import PAD  # noqa: E402

TAUS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]


def load_bbbc039(data: Path | None, npz: Path | None):
    if npz:
        z = np.load(npz)
        imgs, labs = list(z["images"]), list(z["labels"])
    else:
        import tifffile

        files = sorted((data / "bbbc039_nuclei" / "images").glob("*.tif"))
        imgs = [tifffile.imread(f) for f in files]
        labs = [tifffile.imread(str(f).replace("/images/", "/labels/")) for f in files]
    imgs = [percentile_norm(i.astype(np.float32)[None]) for i in imgs]
    labs = [np.asarray(lab, np.int32) for lab in labs]
    return (imgs[0::2], [[lab] for lab in labs[0::2]]), (imgs[1::2], labs[1::2])


def otsu_watershed(img: np.ndarray, min_distance: int = 7, min_size: int = 16) -> np.ndarray:
    sm = ndi.gaussian_filter(img, 1.0)
    mask = ndi.binary_fill_holes(sm > threshold_otsu(sm))
    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=ndi.label(mask)[0],
                           exclude_border=False)  # fmt: skip
    markers = np.zeros(img.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    lab = watershed(-dist, markers, mask=mask)
    sizes = np.bincount(lab.ravel())
    lab[sizes[lab] < min_size] = 0
    return lab


def train_unet(images, labels, steps, batch, width, device, patch=64, seed=0):
    """The single-pass baseline: the same UNet regresses the representation (MSE), 1 NFE."""
    src = PairSource(images, labels, patch=patch)
    den = build(("nuclei",), images[0].shape[0], width, 3)

    def mse(net, batch, generator):
        t, c = batch
        return ((net(torch.zeros_like(t), torch.zeros(1, device=t.device), c) - t) ** 2).mean()

    result = dm.train(den.net, src, steps, batch=batch, lr=1e-3, seed=seed, loss=mse,
                      weight_decay=0.01, grad_clip=0.0, warmup=100, device=device,
                      progress=False)  # fmt: skip
    return result.model.eval()


def trained_steps(path) -> int:
    try:
        return int(dm.read_config(path).get("training", {}).get("steps", 0))
    except FileNotFoundError:
        return 0


def unet_maps(net, img, device):
    with torch.no_grad():
        c = torch.from_numpy(img[None]).to(device)
        out = net(torch.zeros((1, 2, *img.shape[1:]), device=device), torch.zeros(1, device=device),
                  c)  # fmt: skip
    u = ((out[0].clamp(-1, 1) + 1) / 2).cpu().numpy()
    return u[0], u[1]


def evaluate(name, images, truths, segment_fn, nfe_px):
    preds, scores, fps = [], {}, []
    t = time.perf_counter()
    outs = [segment_fn(img) for img in images]
    dt = time.perf_counter() - t
    mpx = sum(np.prod(i.shape[1:]) for i in images) / 1e6
    for (lab, sc), truth in zip(outs, truths):
        preds.append(lab)
        flags = false_positive_flags(truth, lab, 0.5)
        ids = sorted(flags)
        fps += [flags[i] for i in ids]
        for key, per in (sc or {}).items():
            scores.setdefault(key, []).extend(per[i - 1] for i in ids)
    ap = average_precision(truths, preds, TAUS)
    au = {k: auroc(v, fps) for k, v in scores.items()}
    return {"method": name, "AP@0.5": ap[0], "mAP.5:.9": float(np.mean(ap)),
            "AUROC": au, "s/MPx": dt / mpx, "NFE": nfe_px}  # fmt: skip


def object_scores(lab, std, prob):
    n = int(lab.max())
    area = np.maximum(np.bincount(lab.ravel(), minlength=n + 1)[1:], 1)
    u = np.bincount(lab.ravel(), std.ravel(), minlength=n + 1)[1:] / area
    p = np.bincount(lab.ravel(), prob.ravel(), minlength=n + 1)[1:] / area
    return u, p


def microdiff_fn(model, k, steps, params, zoom=1):
    """As the stage does it: mirrored context around the image, resampled by `zoom`
    (`segment.scale`: a number or "auto"), instances from the mean maps, then (K > 1) objects
    that fewer than params.min_consistency of the samples reproduce are dropped."""

    def sample(batch, origins):
        s = predict(model, batch, origins, samples=k, steps=steps, seed=0, pad=PAD)
        return shard_channels(s)

    def run(img):
        f = scale.estimate(model, img, zoom, params, seed=0, pad=PAD).factor
        m = scale.resampled(sample, img[None], [(0, 0)], f)[0]
        p = scale.params_for(params, f)
        lab, _ = instances.extract(m[0], m[2], p)
        sc = {}
        if k > 1:
            maps = [(m[3 + j], m[3 + k + j]) for j in range(k)]
            cons = instances.consistency(lab, int(lab.max()), maps, p)
            lab, cons = instances.drop_inconsistent(lab, cons, p.min_consistency)
            sc["1-consistency"] = 1 - cons
        u, pr = object_scores(lab, m[1], m[0])
        return lab, {"std": u, **sc}

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--npz", type=Path, help="BBBC039 packed as images/labels (device runs)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--k", type=int, default=4, help="the default K")
    ap.add_argument("--sample-steps", type=int, default=2)
    ap.add_argument("--test", type=int, default=50, help="at most this many BBBC039 test images")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", type=Path, help="keep the trained diffusion models here")
    ap.add_argument(
        "--model",
        type=Path,
        help="use this diffusion checkpoint (e.g. the shipped "
        "one) for both data sets instead of training; the UNet is then trained once "
        "on the data that checkpoint was trained on (simulated + BBBC039 train part); with "
        "--cells: the cell model to score instead of the shipped one",
    )
    ap.add_argument("--simulated-test", type=int, default=4)
    ap.add_argument("--wait", action="store_true", help="wait until --model has --steps steps")
    ap.add_argument("--unet", type=Path, help="with --model: the baseline's weights, trained "
                    "(--steps steps) and saved here when missing, loaded when present")  # fmt: skip
    ap.add_argument("--unet-only", action="store_true", help="train and save --unet, then stop")
    ap.add_argument("--dsb", action="store_true", help="also DSB2018's validation part (every 5th "
                    "image by name, held out by tools/train_default_segment.py), split by the "
                    "colour conversion chosen per image: luminance (fluorescence) or other "
                    "(brightfield, stained)")  # fmt: skip
    ap.add_argument("--only", nargs="+", help="only these data sets (bbbc039 simulated dsb_fluo "
                    "dsb_colour)")  # fmt: skip
    ap.add_argument(
        "--sigma-max",
        type=float,
        help="with --model: start sampling here instead "
        "of the checkpoint's own segment.sigma_max (choosing it on validation images)",
    )
    ap.add_argument("--no-unet", action="store_true", help="with --model: skip the UNet rows")
    ap.add_argument("--consistency-grid", type=int, choices=(1, 2), default=2,
                    help="segment.consistency_grid: the samples' objects at half (2) or full "
                    "resolution (1)")  # fmt: skip
    ap.add_argument("--scale", default="1", help="segment.scale for the microdiff rows: a "
                    "number or auto (the model's object_diameter over the image's)")  # fmt: skip
    ap.add_argument(
        "--cells",
        action="store_true",
        help="the cell rows instead (bench/segment_cells.py): shipped cell model, fallback, "
        "seeded watershed",
    )
    a = ap.parse_args()
    dm.set_threads(a.threads)
    device = dm.pick_device(a.device)
    if a.cells:
        import segment_cells

        cell_model = a.model or segment_cells.SEGMENT_CELLS
        rows = segment_cells.run(a.simulated_test, a.k, a.sample_steps, str(device), cell_model)
        title = (f"cell segmentation ({device}, cell model {cell_model}, K={a.k}, "
                 f"{a.sample_steps} DDIM step(s) per sample; {a.simulated_test} images of "
                 "512 x 512 per set)")  # fmt: skip
        segment_cells.print_table(rows, title)
        return
    bbbc_train, (bbbc_imgs, bbbc_truth) = load_bbbc039(a.data, a.npz)
    sim_train = simulated_pairs(8, seed=100)
    sim_test_i, sim_test_l = simulated_pairs(a.simulated_test, seed=900)
    shared = None
    if a.model:
        t0 = time.time()
        if a.no_unet:
            net = None
        elif a.unet and a.unet.is_file():
            net = build(("nuclei",), 1, a.width, 3).net.to(device)
            net.load_state_dict(torch.load(a.unet, map_location=device))
            net.eval()
            print(f"# unet loaded from {a.unet}", file=sys.stderr)
        else:
            mix_i, mix_l = simulated_pairs(12, seed=100)
            mix = (mix_i + bbbc_train[0], mix_l + bbbc_train[1])
            net = train_unet(*mix, a.steps, a.batch, a.width, device, a.patch)
            if a.unet:
                torch.save(net.state_dict(), a.unet)
        if a.unet_only:
            return
        while a.wait and trained_steps(a.model) < a.steps:
            time.sleep(20)  # the checkpoint is still being trained alongside
        model = Model.load(a.model, device=str(device))
        if a.sigma_max:
            model.sigma_max = a.sigma_max
        shared = (model, net)
        print(f"# unet on the checkpoint's data: {time.time() - t0:.0f} s", file=sys.stderr)
    sets = {
        "bbbc039": (bbbc_train, bbbc_imgs[: a.test], bbbc_truth[: a.test]),
        "simulated": (sim_train, sim_test_i, [lab[0] for lab in sim_test_l]),
    }
    if a.dsb:
        if not shared:
            ap.error("--dsb needs --model (the DSB2018 rows score a given checkpoint)")
        di, dl, methods = dsb2018_pairs(a.data, "validation")
        for name, keep in (("dsb_fluo", True), ("dsb_colour", False)):
            idx = [i for i, m in enumerate(methods) if (m == LUMINANCE) == keep]
            sets[name] = (None, [di[i] for i in idx], [dl[i][0] for i in idx])
    if a.only:
        sets = {k: sets[k] for k in a.only if k in sets}  # in the order asked
    params = instances.Params(consistency_grid=a.consistency_grid)
    zoom = a.scale if a.scale == "auto" else float(a.scale)
    rows = []
    for dname, (train, images, truths) in sets.items():
        if shared:
            model, net = shared
        else:
            t0 = time.time()
            out = (a.models / dname) if a.models else Path(f"/tmp/microdiff_bench_seg_{dname}")
            ti, tl = train
            res = train_model(ti, tl, out, steps=a.steps, batch=a.batch, width=a.width,
                              patch=a.patch, device=str(device), threads=a.threads)  # fmt: skip
            model = Model(res.denoiser.eval(), ("nuclei",), 1)
            t1 = time.time()
            net = train_unet(ti, tl, a.steps, a.batch, a.width, device, a.patch)
            print(f"# {dname}: trained diffusion {t1 - t0:.0f} s, unet {time.time() - t1:.0f} s",
                  file=sys.stderr)  # fmt: skip

        def unet_fn(img, net=net):
            prob, dist = unet_maps(net, img, device)
            lab, _ = instances.extract(prob, dist, params)
            _, p = object_scores(lab, np.zeros_like(prob), prob)
            return lab, {"1-prob": 1 - p}

        runs = [
            ("otsu+watershed", lambda img: (otsu_watershed(img[0]), None), 0),
            *([("unet (single pass)", unet_fn, 1)] if net is not None else []),
            ("microdiff K=1", microdiff_fn(model, 1, a.sample_steps, params, zoom),
             nfe(1, a.sample_steps)),
            (f"microdiff K={a.k}", microdiff_fn(model, a.k, a.sample_steps, params, zoom),
             nfe(a.k, a.sample_steps)),
        ]  # fmt: skip
        for name, fn, n in runs:
            r = evaluate(name, images, truths, fn, n)
            r["data"] = dname
            rows.append(r)
            print(f"# {dname} {name}: {r}", file=sys.stderr, flush=True)
    how = f"diffusion model {a.model}" if a.model else f"{a.steps} training steps each"
    print(
        f"\nsegmentation benchmark ({device}, {how}, unet {a.steps} steps, width {a.width}, "
        f"{a.sample_steps} DDIM steps per sample, scale {a.scale}, "
        f"sigma {shared[0].sigma_max if shared else segmodel.SIGMA_MAX}->{segmodel.SIGMA_MIN}; "
        f"test images: " + ", ".join(f"{k} {len(v[1])}" for k, v in sets.items()) + ")\n"
    )
    head = (
        f"| {'data':10} | {'method':18} | AP@0.5 | mAP.5:.9 | AUROC FP vs TP        | s/MPx | NFE |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        au = ", ".join(f"{k} {v:.3f}" for k, v in r["AUROC"].items()) or "-"
        print(f"| {r['data']:10} | {r['method']:18} | {r['AP@0.5']:.3f}  | {r['mAP.5:.9']:.3f}    "
              f"| {au:21} | {r['s/MPx']:5.2f} | {r['NFE']:3d} |")  # fmt: skip


if __name__ == "__main__":
    main()
