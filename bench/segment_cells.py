"""Cell rows of the segmentation benchmark (`bench/segment.py --cells`): the shipped diffusion
cell model (or `--model`), the non-diffusion fallback (`segment.cell_model: none`) and a
nucleus-seeded watershed on the cytoplasm channel (Otsu foreground, watershed of the inverted
smoothed cytoplasm: CellProfiler's IdentifySecondaryObjects "Watershed - Image"), on simulated
images that no model was trained on (training used seeds 100-147; these are 900+ and 950+).

All three grow cells from the same nuclei (the shipped nuclei model, K samples, as the stage
does), so the rows compare the cell step alone; s/MPx times that step (the nuclei cost the same
for all three: the "nuclei" row). A 3-channel diffusion cell model is also given the nuclei found
(the nuclei model's mean foreground), as the stage gives it. Cells are matched to the simulator's
cell truth.
"""

from __future__ import annotations

import time

import numpy as np
import segment  # bench/segment.py: the shared scoring (this module is run from it)
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from microdiff.metrics import average_precision
from microdiff.normalize import percentile_norm
from microdiff.segment import cells as fallback
from microdiff.segment import instances
from microdiff.segment.inputs import PAD
from microdiff.segment.model import (
    Model,
    cell_condition,
    nfe,
    nuclei_found,
    predict,
    shard_channels,
)
from microdiff.shipped import SEGMENT_CELLS, SEGMENT_NUCLEI
from microdiff.simulate import simulate_image
from microdiff.tiling import Box

TAUS = segment.TAUS


def test_sets(n: int, shape=(512, 512)):
    """{name: [(image (2, Y, X) normalized, nuclei truth, cell truth)]}: `n` images drawn as
    the training images are (photons, size, density varied) and `n` like the demo's."""
    rng = np.random.default_rng(900)
    varied, demo = [], []
    for i in range(n):
        args = dict(photons=float(rng.uniform(8, 120)), size=float(rng.uniform(0.8, 1.7)),
                    density=float(rng.uniform(150, 450)))  # fmt: skip
        for out, seed, kw in ((varied, 900 + i, args), (demo, 950 + i, {"photons": 30.0})):
            sim = simulate_image(shape, seed=seed, **kw)
            out.append((percentile_norm(sim.noisy.astype(np.float32)), sim.nuclei, sim.cells))
    return {"sim varied": varied, "sim demo-like": demo}


def nuclei_of(model, img, k, steps, params):
    """(nuclei labels, the nuclei found: the (1, Y, X) mean foreground the cell model is given)."""
    s = predict(model, img[None, :1], [(0, 0)], samples=k, steps=steps, seed=0, pad=PAD)
    m = shard_channels(s)[0]
    lab, _ = instances.extract(m[0], m[2], params)
    if k > 1:
        maps = [((x[0] + 1) / 2, (x[1] + 1) / 2) for x in s[0]]
        cons = instances.consistency(lab, int(lab.max()), maps, params)
        lab, _ = instances.drop_inconsistent(lab, cons, params.min_consistency)
    return lab, nuclei_found(s, model.kinds)[0]


def diffusion_cells(model, k, steps, params):
    def run(img, nuc, found):
        cond = cell_condition(model, img[None], found[None])
        s = predict(model, cond, [(0, 0)], samples=k, steps=steps, seed=1, pad=PAD)
        m = shard_channels(s)[0]
        lab = instances.cells_from(m[0], m[2], nuc, params)
        n = int(nuc.max())
        area = np.maximum(np.bincount(lab.ravel(), minlength=n + 1)[1:], 1)
        std = np.bincount(lab.ravel(), m[1].ravel(), minlength=n + 1)[1:] / area
        maps = [((x[0] + 1) / 2, (x[1] + 1) / 2) for x in s[0]]
        cons = instances.cell_hits(lab, nuc, n, maps, params) / len(maps)
        return lab, {"std": std, "1-consistency": 1 - cons}

    return run


def fallback_cells(img, nuc, found):
    cyto = img[1:2]
    whole = Box((0, 0), cyto.shape[1:])
    t = fallback.image_threshold(cyto, [whole])["threshold"]
    w = fallback.fallback_window(cyto, whole, nuc, t)
    return instances.cells_from(w.prob, w.dist, nuc), None


def watershed_cells(img, nuc, found):
    c = ndi.gaussian_filter(img[1], fallback.SMOOTH)
    mask = (c > threshold_otsu(c)) | (nuc > 0)
    return watershed(-c, nuc, mask=mask).astype(np.int32), None


def evaluate(name, items, nuclei, fn, nfe_px):
    """`segment.evaluate` of cells grown by `fn(image, nuclei, nuclei found)`: it takes images
    in order, so each call gets the next image's nuclei."""
    seeds = iter(nuclei)
    images, truths = [img for img, _, _ in items], [cell for _, _, cell in items]
    return segment.evaluate(name, images, truths, lambda img: fn(img, *next(seeds)), nfe_px)


def run(n_images: int, k: int, steps: int, device: str = "cpu", cell_model=SEGMENT_CELLS):
    nuc_model = Model.load(SEGMENT_NUCLEI, device=device)
    cells = Model.load(cell_model, device=device)
    params = instances.Params()
    rows = []
    for dname, items in test_sets(n_images).items():
        t = time.perf_counter()
        nuclei = [nuclei_of(nuc_model, img, k, steps, params) for img, _, _ in items]
        mpx = sum(np.prod(img.shape[1:]) for img, _, _ in items) / 1e6
        ap = average_precision([n for _, n, _ in items], [lab for lab, _ in nuclei], TAUS)
        rows.append({"data": dname, "method": "nuclei (shared seeds)", "AP@0.5": ap[0],
                     "mAP.5:.9": float(np.mean(ap)), "s/MPx": (time.perf_counter() - t) / mpx,
                     "NFE": nfe(k, steps), "AUROC": {}})  # fmt: skip
        runs = [
            (f"diffusion cells K={k}", diffusion_cells(cells, k, steps, params), nfe(k, steps)),
            ("fallback (none)", fallback_cells, 0),
            ("seeded watershed", watershed_cells, 0),
        ]
        for name, fn, n in runs:
            rows.append({"data": dname, **evaluate(name, items, nuclei, fn, n)})
    return rows


def print_table(rows, header: str) -> None:
    print(f"\n{header}\n")
    head = f"| {'data':13} | {'method':21} | AP@0.5 | mAP.5:.9 | AUROC FP vs TP           | s/MPx | NFE |"  # noqa: E501
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        au = ", ".join(f"{k} {v:.3f}" for k, v in r["AUROC"].items()) or "-"
        print(f"| {r['data']:13} | {r['method']:21} | {r['AP@0.5']:.3f}  | {r['mAP.5:.9']:.3f}    "
              f"| {au:24} | {r['s/MPx']:5.2f} | {r['NFE']:3d} |")  # fmt: skip
