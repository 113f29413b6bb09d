"""Denoising benchmark: noisy input, non-local means, Noise2Void-style blind spot, supervised
upper bound and microdiff's self-supervised diffusion denoiser, side by side in one run.

    .venv/bin/python bench/restore.py --data ../shared/data [--steps 400] [--threads 2] [--jobs 3]

Data: W2S widefield (test: fields of view 16-20, 3 channels each), FMD confocal (3 images) and
simulator ground truth (`microdiff.simulate`, 30 peak photons). Every learned method is the same
network (the engine's UNet, width 16, depth 3, made local) trained for the same number of steps
in the same GAT-normalized domain:
- N2V-style: blind-spot training (Krull et al. 2019): ~2% of pixels replaced by a random
  neighbour, loss on those pixels only; one network evaluation at inference;
- supervised: |D(y) - x|^2 on noisy/clean pairs of *other* fields of view (W2S: fields 1-15;
  FMD: leave-one-field-out, BPAE_B/G share one field; simulation: other seeds);
- microdiff: SURE-trained diffusion denoiser (see `microdiff.restore`; heteroscedastic SURE
  with the noise model's variance map, since the GAT does not stabilize W2S's few-photon
  frames), posterior mean by Tweedie at the data's noise level; one network evaluation; then
  evaluated at the noise level the stage uses for a SURE-trained model (1.5 sigma, chosen on
  simulated images: `restore.level`); also the mean of that over the 8 flips/rotations of
  the image (8 evaluations; the other networks are shown single-pass).
Integer-valued images (all three sets) are dithered before the GAT (`restore.noise_model`),
for every method alike.
W2S images were rescaled to 8 bits one by one, so each W2S image gets its own noise model; FMD
and simulated images share one per channel.
Self-supervised methods train on the noisy test images themselves (nothing else).
Metrics as CARE (Weigert et al. 2018): the clean target normalized by its 0.1/99.9
percentiles, the prediction fitted to it by least squares (affine), PSNR (data range 1) and
SSIM; seconds per megapixel at inference on this machine's CPU; NFE.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_nl_means

from microdiff.diffusion import Denoiser, augment, build, train
from microdiff.restore.denoise import (
    denoise_v,
    from_v,
    to_v,
    train_denoiser,
    variance_map,
    vst_range,
)
from microdiff.restore.level import SURE_LEVEL
from microdiff.restore.noise_model import fit_noise_model
from microdiff.simulate import simulate_image


def care_metrics(pred: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    gt = clean.astype(np.float64)
    lo, hi = np.percentile(gt, [0.1, 99.9])
    gt = (gt - lo) / (hi - lo)
    a = np.stack([pred.ravel().astype(np.float64), np.ones(pred.size)], 1)
    coef = np.linalg.lstsq(a, gt.ravel(), rcond=None)[0]
    p = (a @ coef).reshape(gt.shape)
    psnr = 10 * np.log10(1.0 / np.mean((p - gt) ** 2))
    return psnr, structural_similarity(p, gt, data_range=1.0)


class Images:
    """Noisy test images (single-channel planes) in the GAT-normalized domain."""

    def __init__(self, noisy: list[np.ndarray], groups: list[int]):
        self.noisy = [n.astype(np.float32) for n in noisy]
        self.groups = groups  # images of one group (channel) share a noise model
        self.models = {}
        for g in set(groups):
            planes = [n[None] for n, k in zip(self.noisy, groups) if k == g]
            self.models[g] = fit_noise_model(planes, 1)
        self.v, self.sigma, self.ranges = [], [], []
        for i, (n, g) in enumerate(zip(self.noisy, groups)):
            lo, hi = np.percentile(n, [1, 99.8])
            f_lo, f_hi, s = vst_range(self.models[g], [lo], [hi])
            # integer data are dithered (a pattern of their own per image; see noise_model)
            self.v.append(to_v(n[None], self.models[g], f_lo, f_hi, (i * 8192, 0))[0])
            self.sigma.append(float(s[0]))
            self.ranges.append((f_lo, f_hi))
        self.var = [
            variance_map(v, self.models[g], 0, r[0][0], r[1][0])
            for v, g, r in zip(self.v, groups, self.ranges)
        ]

    def back(self, i: int, v: np.ndarray) -> np.ndarray:
        f_lo, f_hi = self.ranges[i]
        return from_v(v[None], self.models[self.groups[i]], f_lo, f_hi)[0]


def patches(imgs: Images, clean: list | None, patch: int, hetero: bool = True):
    def sample(n, rng):
        ys, xs, ws, sig = [], [], [], []
        for _ in range(n):
            i = int(rng.integers(len(imgs.v)))
            h, w = imgs.v[i].shape
            y0, x0 = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            sl = np.s_[y0 : y0 + patch, x0 : x0 + patch]
            stack = [imgs.v[i][sl], imgs.var[i][sl]]
            stack += [clean[i][sl]] if clean is not None else []
            both = augment(np.stack(stack), rng)
            ys.append(both[:1])
            ws.append(both[1:2])
            xs.append(both[2:])
            sig.append(imgs.sigma[i])
        y = torch.from_numpy(np.stack(ys))
        x = torch.from_numpy(np.stack(xs)) if clean is not None else None
        var = torch.from_numpy(np.stack(ws)) if hetero else None
        return y, torch.tensor(sig), x, var

    return sample


def network() -> Denoiser:
    torch.manual_seed(0)
    return build(1, width=16, depth=3, local=True)


def train_n2v(imgs: Images, steps: int, batch=8, patch=64, lr=1e-3, frac=0.02) -> Denoiser:
    """Blind-spot training of the same network at the data's noise level, on the engine's loop
    (its raw weights: no EMA, as N2V)."""
    source = patches(imgs, None, patch)

    def blind_spots(n, rng):
        y, sig, *_ = source(n, rng)
        mask = torch.from_numpy(rng.random(y.shape) < frac)
        # each masked pixel takes a random neighbour's value (5x5, not itself)
        dy = rng.integers(-2, 3, y.shape)
        dx = rng.integers(-2, 3, y.shape)
        same = (dy == 0) & (dx == 0)
        dx[same] = 1
        yy, xx = np.meshgrid(np.arange(patch), np.arange(patch), indexing="ij")
        src_y = np.clip(yy[None, None] + dy, 0, patch - 1)
        src_x = np.clip(xx[None, None] + dx, 0, patch - 1)
        bi = np.arange(n)[:, None, None, None]
        moved = torch.from_numpy(y.numpy()[bi, 0, src_y, src_x])
        return torch.where(mask, moved, y), sig, y, mask

    def masked_mse(den, batch, generator):
        inp, sig, y, mask = batch
        return (((den(inp, sig) - y) ** 2) * mask).sum() / mask.sum().clamp_min(1)

    result = train(network(), blind_spots, steps, batch=batch, lr=lr, seed=1, loss=masked_mse,
                   weight_decay=0.01, warmup=50, decay_to=0.1, progress=False)  # fmt: skip
    return result.model.cpu().eval()


def run_net(den, imgs: Images, flips: bool = False, scale: float = 1.0):
    """One network evaluation per pixel, or (`flips`) the mean over the 8 flips/rotations;
    the network evaluated at `scale` times each image's noise level."""
    out, start, px = [], time.perf_counter(), 0
    for i, v in enumerate(imgs.v):
        acc = np.zeros_like(v)
        sig = [imgs.sigma[i] * scale]
        for k, flip in [(k, f) for k in range(4) for f in (False, True)][: 8 if flips else 1]:
            t = np.rot90(v, k)[:, ::-1] if flip else np.rot90(v, k)
            mean, _ = denoise_v(den, np.ascontiguousarray(t)[None, None], sig, [(0, 0)])
            m = mean[0, 0][:, ::-1] if flip else mean[0, 0]
            acc += np.rot90(m, -k)
        out.append(imgs.back(i, acc / (8 if flips else 1)))
        px += v.size
    return out, (time.perf_counter() - start) / (px / 1e6)


def run_nlm(imgs: Images) -> tuple[list[np.ndarray], float]:
    out, start, px = [], time.perf_counter(), 0
    for i, v in enumerate(imgs.v):
        s = imgs.sigma[i]  # the fitted noise model's level (GAT domain)
        d = denoise_nl_means(v, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True)
        out.append(imgs.back(i, d.astype(np.float32)))
        px += v.size
    return out, (time.perf_counter() - start) / (px / 1e6)


def clean_v(imgs: Images, noisy: list, clean: list) -> list[np.ndarray]:
    """Clean targets on each noisy image's intensity scale, in that image's v domain."""
    out = []
    for i, (n, c) in enumerate(zip(noisy, clean)):
        a = np.stack([c.ravel().astype(np.float64), np.ones(c.size)], 1)
        coef = np.linalg.lstsq(a, n.ravel().astype(np.float64), rcond=None)[0]
        matched = np.maximum(c * coef[0] + coef[1], 0).astype(np.float32)
        f_lo, f_hi = imgs.ranges[i]
        out.append(to_v(matched[None], imgs.models[imgs.groups[i]], f_lo, f_hi)[0])
    return out


def evaluate(name, test, train_sets, steps) -> list[tuple]:
    """test: (noisy, clean, groups); train_sets: [(noisy, clean, groups, test indices)]."""
    rows = []
    noisy, clean, groups = test
    imgs = Images(noisy, groups)
    results = {"noisy input": ([n.astype(np.float32) for n in noisy], 0.0, 0)}
    results["non-local means"] = (*run_nlm(imgs), 0)
    t0 = time.perf_counter()
    results["N2V-style (same UNet)"] = (*run_net(train_n2v(imgs, steps), imgs), 1)
    t_n2v = time.perf_counter() - t0
    sup = [None] * len(noisy)
    t0 = time.perf_counter()
    for tr_noisy, tr_clean, tr_groups, idx in train_sets:
        tr = Images(tr_noisy, tr_groups)
        src = patches(tr, clean_v(tr, tr_noisy, tr_clean), 64)
        den, _ = train_denoiser(network(), src, steps, lr=1e-3, p_exact=0.5, progress=False)
        sub = Images([noisy[i] for i in idx], [groups[i] for i in idx])
        preds, spm = run_net(den, sub)
        for i, p in zip(idx, preds):
            sup[i] = p
    t_sup = time.perf_counter() - t0
    results["supervised (pairs, other FOVs)"] = (sup, spm, 1)
    t0 = time.perf_counter()
    src = patches(imgs, None, 64)  # with the noise variance map: heteroscedastic SURE
    den, _ = train_denoiser(network(), src, steps, lr=1e-3, p_exact=0.0, progress=False)
    results["microdiff at sigma (Tweedie)"] = (*run_net(den, imgs), 1)
    scale = SURE_LEVEL  # as the stage evaluates a SURE-trained model (restore.level)
    results[f"microdiff at {scale:g} sigma (default)"] = (*run_net(den, imgs, scale=scale), 1)
    t_ours = time.perf_counter() - t0
    flips = run_net(den, imgs, flips=True, scale=scale)
    results["microdiff, mean over 8 flips/rotations"] = (*flips, 8)
    for method, (preds, spm, nfe) in results.items():
        m = np.array([care_metrics(p, c) for p, c in zip(preds, clean)])
        rows.append((name, method, m[:, 0].mean(), m[:, 1].mean(), spm, nfe))
    print(
        f"# {name}: {len(noisy)} test images; training s: N2V {t_n2v:.0f}, supervised "
        f"{t_sup:.0f}, microdiff {t_ours:.0f}",
        flush=True,
    )
    return rows


def load(folder: Path, names: list[str]):
    noisy = [tifffile.imread(folder / "noisy" / n) for n in names]
    clean = [tifffile.imread(folder / "clean" / n) for n in names]
    return noisy, clean


def w2s_set(data: Path, steps: int) -> list[tuple]:
    w2s = data / "w2s_widefield"
    test = [f"{f:03d}_{c}.tif" for f in range(16, 21) for c in range(3)]
    train = [f"{f:03d}_{c}.tif" for f in range(1, 16) for c in range(3)]
    tn, tc = load(w2s, test)
    rn, rc = load(w2s, train)
    groups = list(range(len(test)))  # each W2S image was rescaled on its own
    tr_groups = list(range(len(train)))
    return evaluate("W2S widefield", (tn, tc, groups), [(rn, rc, tr_groups, range(15))], steps)


def fmd_set(data: Path, steps: int) -> list[tuple]:
    fmd = data / "fmd_confocal"
    names = ["BPAE_B.tif", "BPAE_G.tif", "fish.tif"]
    n, c = load(fmd, names)
    folds = [([n[2]], [c[2]], [2], [0, 1]), ([n[0], n[1]], [c[0], c[1]], [0, 1], [2])]
    return evaluate("FMD confocal", (n, c, [0, 1, 2]), folds, steps)


def sim_set(data: Path, steps: int) -> list[tuple]:
    sims = [simulate_image((256, 512), photons=10, seed=s) for s in (1, 2, 3, 4)]
    n = [s.noisy[ch] for s in sims[:2] for ch in range(2)]
    c = [s.clean[ch] for s in sims[:2] for ch in range(2)]
    rn = [s.noisy[ch] for s in sims[2:] for ch in range(2)]
    rc = [s.clean[ch] for s in sims[2:] for ch in range(2)]
    return evaluate("simulation (10 photons)", (n, c, [0, 1, 0, 1]),
                    [(rn, rc, [0, 1, 0, 1], range(4))], steps)  # fmt: skip


SETS = {"w2s": w2s_set, "fmd": fmd_set, "sim": sim_set}


def _run(job) -> list[tuple]:
    key, data, steps, threads = job
    torch.set_num_threads(threads)
    return SETS[key](data, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="w2s,fmd,sim")
    p.add_argument("--jobs", type=int, default=1, help="data sets evaluated in parallel")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    jobs = [(k, Path(a.data), a.steps, a.threads) for k in a.only.split(",")]
    if a.jobs > 1:
        with multiprocessing.get_context("fork").Pool(min(a.jobs, len(jobs))) as pool:
            parts = pool.map(_run, jobs, chunksize=1)
    else:
        parts = [_run(j) for j in jobs]
    rows = [r for part in parts for r in part]
    print(f"\n{'data':26s} {'method':40s} {'PSNR':>7s} {'SSIM':>7s} {'s/MP':>7s} {'NFE':>4s}")
    for name, method, psnr, ssim, spm, nfe in rows:
        print(f"{name:26s} {method:40s} {psnr:7.2f} {ssim:7.4f} {spm:7.2f} {nfe:4d}")


if __name__ == "__main__":
    main()
