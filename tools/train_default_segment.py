"""Train a shipped default segmentation model: src/microdiff/models/segment_<kind>/.

--kind nuclei (default) trains the nuclei model; --kind cells the cells-only model that the
segment stage runs beside it (conditioned on the nuclear and cytoplasm channels, trained on the
simulator's cells only).

Data: simulated nuclei (`microdiff.simulate`, varied photon counts, sizes and densities) and,
when --data is given, the BBBC039 training part (images with an even index in sorted order; the
odd ones are the benchmark's test part, see bench/segment.py). Run once by a maintainer, e.g.

    python tools/train_default_segment.py --data ../shared/data --steps 4000 --threads 1

The shipped weights are that run (934 s on one CPU thread). They are small (width 16, depth 3:
about 2 MB). Noise levels follow `train_model`'s defaults (log-normal p_mean 1.0, p_std 1.2:
mostly noise where the image decides the answer).
The shipped cell model is three runs: two of a model on the nuclear and cytoplasm channels,
the second fine-tuning the first on more images at half the learning rate, then a fine-tune that
adds the nuclei found as a third condition channel (--nuclei-found: the shipped nuclei model's
mean foreground, K=4, 1 step, as the segment stage gives it; the third channel's first-conv
weights start at zero, so step 0 computes what the 2-channel model computes):

    python tools/train_default_segment.py --kind cells --simulated 32 --steps 3000 --patch 96 \
        --threads 2 --out /tmp/cells1
    python tools/train_default_segment.py --kind cells --init /tmp/cells1 --simulated 48 \
        --steps 3000 --patch 96 --lr 5e-4 --threads 2 --out /tmp/cells2
    python tools/train_default_segment.py --kind cells --nuclei-found --init /tmp/cells2 \
        --simulated 48 --steps 3000 --patch 96 --lr 5e-4 --threads 1

(2015 s and 1114 s on two threads of a shared CPU, last loss 0.043, then 0.029; the third 2311 s
on one thread of a 2-core CPU shared with two other jobs, 231 s of it making the nuclei found,
last loss 0.0243; width 16, depth 3, 1.9 MB). /tmp/cells2 was the shipped model before the
third run. The second run lifted cells AP@0.5 on simulated validation images (seeds 700-709)
from 0.80 / 0.82 to 0.87 / 0.89 (demo-like / varied): the first model called much of an empty,
noisy background cell.
Only config.json and weights.pt are shipped; the resumable train_state.pt is deleted.

Cell models sample from sigma 20 (`segment.sigma_max` in the config, this tool's default for
--kind cells), not the stage's 5. At sigma 5 a training input (target + 5 * noise) still shows
the target: fg is -1 on the background, half the image, and the models read it. From pure
noise at 5 they see no such offset and call background cell: mean cell probability on the
truth's background of two simulated images (tests/unit/test_cell_model.py, which pins it) 0.42 /
0.38 for /tmp/cells2 and 0.68 / 0.60 for the third run at 750 steps from sigma 5; from 20, 0.04
/ 0.03 for /tmp/cells2 and 0.05 / 0.03 for the shipped third run. That is why the earlier
3-channel fine-tunes, sampled from 5 (2000 steps at lr 5e-4; 1000 at 5e-5, seeds from 300),
segmented worse than the 2-channel model, on their own training images too, though their loss
was lower.

`bench/segment.py --cells --sample-steps 1 --simulated-test 5 --threads 1 --model DIR` (cells
AP@0.5 / mAP, AUROC of per-cell std and 1-consistency; 5 images of 512 x 512, seeds 900-904
"varied" and 950-954 "demo-like"; DIR a copy with `segment.sigma_max` set as listed):

| model | sigma_max | varied | demo-like |
|---|---|---|---|
| /tmp/cells2 (2 channels) | 5 | 0.832 / 0.553, 0.66, 0.58 | 0.956 / 0.721, 0.58, 0.47 |
| /tmp/cells2 (2 channels) | 20 | 0.858 / 0.595, 0.49, 0.49 | 0.956 / 0.731, 0.45, 0.50 |
| third run at 750 steps | 5 | 0.747 / 0.490, 0.78, 0.69 | 0.828 / 0.597, 0.95, 0.89 |
| third run at 750 steps | 20 | 0.886 / 0.624, 0.66, 0.53 | 0.956 / 0.743, 0.37, 0.50 |
| third run, 3000 steps (shipped) | 20 | 0.875 / 0.631, 0.57, 0.49 | 0.956 / 0.765, 0.38, 0.50 |

The high AUROCs from sigma 5 rated cells spread over the background (likely the samples differ
most there); from sigma 20 the cells' std and consistency tell false cells little (0.37-0.66).

The generalist attempt (issue 17), DSB2018 added (--dsb: all but every 5th image by sorted
name; colour and brightfield ones through the segment stage's colour conversion
`segment.prepare`, three times over), with zoom, blur and noise augmentation, fine-tuning the
shipped model (not shipped: see below):

    python tools/train_default_segment.py --data ../shared/data --dsb --colour-repeat 3 \
        --scale 0.5 2 --blur 1.5 --noise 0.1 --init src/microdiff/models/segment_nuclei \
        --lr 7e-4 --steps 3000 --width 16 --patch 64 --threads 1 --out /tmp/gen/ft16

(1425 s on one thread of a shared 2-core CPU, last loss 0.041; its data list predates one rule
change in `prepare.choose`, which now calls one more colourful training image stained.)
Sampled from the stage's sigma 5 it over-calls nuclei (AP@0.5 0.25 on DSB2018 fluorescence
validation, K = 1): it reads the noisy input at sigma 5, where the sampler's pure noise is not
what it was trained on. From sigma 20 (`--sigma-max 20`, recorded as segment.sigma_max; chosen
on DSB2018 validation images) `bench/segment.py --dsb --sample-steps 1`, K = 4, 1 step:
DSB2018 fluorescence 0.712 (shipped 0.687; shipped from sigma 20: 0.699), colour 0.369 (0.293;
0.286), simulated 0.876 (0.822), but BBBC039 test 0.887 against the shipped 0.902: more than
0.01 worse, so the shipped weights stayed (from sigma 10: BBBC039 0.884, K = 1 on DSB2018
fluorescence 0.597; from sigma 20: 0.887). What the DSB data bought is small: the shipped model
from sigma 20 is within 0.013 on DSB2018 fluorescence, so most of that gain is the start.

The same fine-tune on data sized as inference sizes it (issue 17; not shipped): with
--normalise-scale each training pair is resampled (labels nearest) as `segment.scale: auto`
resamples an image, its true objects standing in for the first pass (`scale.to_model_size`:
to the --init model's object_diameter 27.71 px where the median whole-object diameter is
outside its range [13.40, 33.95]; 148 of 410 pairs, factors 0.44..3.17), with a small zoom
jitter instead of 0.5..2; the config records the diameter and range normalised to:

    python tools/train_default_segment.py --data ../shared/data --dsb --colour-repeat 3 \
        --normalise-scale --scale 0.8 1.25 --blur 1.5 --noise 0.1 \
        --init src/microdiff/models/segment_nuclei --lr 7e-4 --steps 2500 --width 16 \
        --patch 64 --threads 1 --sigma-max 20 --out /tmp/scalenorm_model

(683 s on one thread of the shared 2-core CPU, last loss 0.0358.) `bench/segment.py --dsb
--scale auto --sample-steps 1 --k 4`, AP@0.5 against the shipped model's 0.738 / 0.293 /
0.822 / 0.902 (sigma 5, same machine): from sigma 20, DSB2018 fluorescence 0.716, colour
0.363, simulated 0.853, BBBC039 test 0.895; from sigma 5 (`--sigma-max 5`) 0.575, 0.271,
0.526, 0.856 (it over-calls from the stage's start, as the run above did). Colour gains,
fluorescence and BBBC039 lose, so the shipped weights stayed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from microdiff.diffusion import read_config
from microdiff.normalize import percentile_norm
from microdiff.segment.model import Model, nuclei_prob, train_model
from microdiff.segment.prepare import LUMINANCE, nuclear_channel
from microdiff.segment.represent import PairSource
from microdiff.segment.scale import to_model_size, training_diameters
from microdiff.segment.stage import DEFAULT_MODEL, PAD
from microdiff.simulate import simulate_image

MODELS = Path(__file__).resolve().parents[1] / "src/microdiff/models"
# a cell model's sampling start: at the stage's sigma 5 a training input still shows the target
# (fg -1 on the background), so from pure noise there it calls background cell (see above)
CELL_SIGMA_MAX = 20.0


def simulated_pairs(n: int, seed: int = 100, shape=(384, 384), kind: str = "nuclei"):
    """Simulated (image, labels) pairs: the nuclear channel and nuclei for the nuclei model;
    the nuclear and cytoplasm channels and cells for the cell model (`with_nuclei_found` adds
    a third channel, --nuclei-found)."""
    rng = np.random.default_rng(seed)
    channels = ("nuclei",) if kind == "nuclei" else ("nuclei", "cytoplasm")
    images, labels = [], []
    for i in range(n):
        sim = simulate_image(
            shape,
            channels=channels,
            photons=float(rng.uniform(8, 120)),
            size=float(rng.uniform(0.8, 1.7)),
            density=float(rng.uniform(150, 450)),
            seed=seed + i,
        )
        images.append(percentile_norm(sim.noisy.astype(np.float32)))
        labels.append([sim.nuclei if kind == "nuclei" else sim.cells])
    return images, labels


def with_nuclei_found(images, samples: int = 4, steps: int = 1):
    """The cell model's condition: each (nuclear, cytoplasm) image with the shipped nuclei
    model's mean foreground appended, made as the segment stage makes it (K samples, `steps`
    DDIM steps, mirrored by PAD, seed 0)."""
    nuc = Model.load(DEFAULT_MODEL, device="cpu")
    return [np.concatenate([img, nuclei_prob(nuc, img, samples, steps, seed=0, pad=PAD)])
            for img in images]  # fmt: skip


def bbbc039_pairs(data: Path, part: str = "train"):
    """BBBC039 images split by image: even sorted index -> train, odd -> test."""
    import tifffile

    files = sorted((data / "bbbc039_nuclei" / "images").glob("*.tif"))
    files = files[0::2] if part == "train" else files[1::2]
    images = [percentile_norm(tifffile.imread(f).astype(np.float32)[None]) for f in files]
    labels = [[tifffile.imread(str(f).replace("/images/", "/labels/")).astype(np.int32)]
              for f in files]  # fmt: skip
    return images, labels


def dsb2018_split(data: Path, part: str = "train") -> list[Path]:
    """DSB2018 images by sorted name: every 5th (index 0, 5, 10, ...) is the validation part,
    held out of training (bench/segment.py --dsb scores it); the rest trains."""
    files = sorted((data / "dsb2018" / "images").glob("*.tif"))
    val = files[0::5]
    return val if part == "validation" else [f for f in files if f not in val]


def dsb2018_pairs(data: Path, part: str = "train"):
    """DSB2018 (image, labels) pairs; every image (RGB TIFF) goes through the segment stage's
    colour conversion (`segment.prepare`). Returns images, labels and the conversions."""
    import tifffile

    images, labels, methods = [], [], []
    for f in dsb2018_split(data, part):
        rgb = np.moveaxis(tifffile.imread(f), -1, 0).astype(np.float32)
        plane, conv = nuclear_channel(rgb)
        images.append(plane)
        labels.append([tifffile.imread(str(f).replace("/images/", "/labels/")).astype(np.int32)])
        methods.append(conv.method)
    return images, labels, methods


def record_diameter(model_dir: Path, labels) -> None:
    """Write the training labels' median object diameter (and 10th..90th percentile) into a
    trained model's config (models trained before `train_model` recorded them themselves; the
    weights are untouched)."""
    path = Path(model_dir) / "config.json"
    cfg = json.loads(path.read_text())
    p10, p50, p90 = training_diameters([lab[0] for lab in labels])
    cfg["segment"]["object_diameter"], cfg["segment"]["object_diameter_range"] = p50, [p10, p90]
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    logging.info("%s: object_diameter %s", path, cfg["segment"]["object_diameter"])


def normalise_scale(images, labels, model_dir: Path):
    """Every (image, labels) pair resampled as `segment.scale: auto` resamples an image at
    inference for the model in `model_dir` (its recorded `object_diameter` and
    `object_diameter_range`), the image's own true objects standing in for the first pass
    (`scale.to_model_size`). Returns images, labels, factors and the (diameter, range) used."""
    seg = read_config(model_dir)["segment"]
    px, rng = seg["object_diameter"], seg.get("object_diameter_range")
    out_i, out_l, factors = [], [], []
    for img, labs in zip(images, labels):
        if np.ndim(labs[0]) == 2:
            img, labs, z = to_model_size(img, labs, px, rng)
            factors.append(z.factor)
        out_i.append(img)
        out_l.append(labs)
    return out_i, out_l, factors, (px, rng)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="folder holding bbbc039_nuclei/ (optional)")
    ap.add_argument("--npz", type=Path, help="BBBC039 packed as images/labels arrays (optional)")
    ap.add_argument(
        "--kind",
        choices=("nuclei", "cells"),
        default="nuclei",
        help="nuclei: the nuclei model (nuclear channel); cells: the cell model (nuclear and "
        "cytoplasm channels, simulated cells only)",
    )
    ap.add_argument("--out", type=Path, help="default: the shipped models/segment_<kind>/")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--simulated", type=int, default=24)
    ap.add_argument("--sim-seed", type=int, default=100, help="seed of the first simulated image")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init", type=Path, help="start from this checkpoint (fine-tuning)")
    ap.add_argument(
        "--nuclei-found",
        action="store_true",
        help="cells: a third condition channel, the shipped nuclei model's mean foreground "
        "(with --init from a 2-channel model, its weights start at zero)",
    )
    ap.add_argument(
        "--hold-out",
        type=int,
        default=0,
        help="leave out the last N annotated BBBC039 train-part images (validation)",
    )
    ap.add_argument("--dsb", action="store_true", help="also DSB2018's training part (--data)")
    ap.add_argument("--colour-repeat", type=int, default=1,
                    help="DSB2018 images not converted by plain luminance (colour, brightfield) "
                    "appear this many times (they are few)")  # fmt: skip
    ap.add_argument("--scale", type=float, nargs=2, default=(1.0, 1.0),
                    help="random zoom range (log-uniform), e.g. 0.5 2")  # fmt: skip
    ap.add_argument("--blur", type=float, default=0.0, help="max Gaussian blur sigma (px)")
    ap.add_argument(
        "--sigma-max",
        type=float,
        help=f"sampling start recorded in the config (default: {CELL_SIGMA_MAX:g} for --kind "
        "cells, else the stage's)",
    )
    ap.add_argument("--noise", type=float, help="max noise std (default: a fixed 0.02)")
    ap.add_argument("--normalise-scale", action="store_true",
                    help="resample each training image (labels nearest) to the object size of "
                    "--init's model (else the shipped one) as segment.scale: auto does at "
                    "inference, by its true objects' median diameter; that diameter and range "
                    "are recorded in the config")  # fmt: skip
    ap.add_argument("--diameter-only", action="store_true",
                    help="no training: write the data's median object diameter into --out's "
                    "config (segment.object_diameter, for segment.scale: auto)")  # fmt: skip
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t = time.time()
    out = a.out or MODELS / f"segment_{a.kind}"
    images, labels = simulated_pairs(a.simulated, a.sim_seed, kind=a.kind)
    sources = [
        f"simulate x{a.simulated}" + (f" (seeds from {a.sim_seed})" if a.sim_seed != 100 else "")
    ]
    if a.kind == "cells":
        if a.data or a.npz:
            ap.error("the cell model trains on simulated cells only (no real cell truth here)")
        if a.nuclei_found:
            images = with_nuclei_found(images)
            sources.append("condition: nuclear, cytoplasm, shipped nuclei model's mean fg (K=4)")
    if a.data or a.npz:
        if a.npz:
            z = np.load(a.npz)
            idx = range(0, len(z["images"]), 2)
            bi = [percentile_norm(z["images"][i].astype(np.float32)[None]) for i in idx]
            bl = [[z["labels"][i].astype(np.int32)] for i in idx]
        else:
            bi, bl = bbbc039_pairs(a.data)
        if a.hold_out:
            held = [i for i, lab in enumerate(bl) if lab[0].any()][-a.hold_out :]
            bi = [x for i, x in enumerate(bi) if i not in held]
            bl = [x for i, x in enumerate(bl) if i not in held]
            sources.append(f"validation: bbbc039 train-part images {held} held out")
        images += bi
        labels += bl
        sources.insert(1, f"bbbc039 train part x{len(bi)}")
    if a.dsb:
        di, dl, methods = dsb2018_pairs(a.data)
        extra = [i for i, m in enumerate(methods) if m != LUMINANCE] * (a.colour_repeat - 1)
        images += di + [di[i] for i in extra]
        labels += dl + [dl[i] for i in extra]
        counts = {m: methods.count(m) for m in sorted(set(methods))}
        sources.append(f"dsb2018 all but every 5th by name x{len(di)} {counts}, "
                       f"non-luminance ones x{a.colour_repeat}")  # fmt: skip
    norm = None
    if a.normalise_scale:
        images, labels, factors, norm = normalise_scale(images, labels, a.init or DEFAULT_MODEL)
        moved = [f for f in factors if f != 1]
        sources.append(
            f"normalise-scale: to object_diameter {norm[0]} where outside {norm[1]} "
            f"({len(moved)} of {len(factors)} pairs resampled"
            + (f", factors {min(moved):.3g}..{max(moved):.3g})" if moved else ")")
        )
    augment = {"scale": tuple(a.scale), "blur": a.blur, "noise": a.noise}
    sources.append(f"augment {augment}")
    logging.info("data ready in %.0f s: %s", time.time() - t, sources)
    if a.diameter_only:
        return record_diameter(out, labels)
    if a.init:
        prev = read_config(a.init)
        sources.append(
            f"fine-tuned from a checkpoint of {prev['training']['steps']} steps on "
            f"{prev.get('trained_on')}"
        )
    if a.sigma_max is None and a.kind == "cells":
        a.sigma_max = CELL_SIGMA_MAX
    res = train_model(images, labels, out, kinds=(a.kind,), steps=a.steps, batch=a.batch,
                      patch=a.patch, width=a.width, depth=3, device=a.device, threads=a.threads,
                      lr=a.lr, init=a.init, sigma_max=a.sigma_max,
                      source=PairSource(images, labels, patch=a.patch, **augment),
                      extra_config={"trained_on": sources,
                                    "script": "tools/train_default_segment.py"})  # fmt: skip
    logging.info("trained %d steps in %.0f s, last loss %.4f", res.step, time.time() - t,
                 float(np.mean(res.losses[-100:])))  # fmt: skip
    if norm:  # the size the data were normalised to, not the normalised labels' own
        path = out / "config.json"
        cfg = json.loads(path.read_text())
        cfg["segment"]["object_diameter"], cfg["segment"]["object_diameter_range"] = norm
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (out / "train_state.pt").unlink(missing_ok=True)  # ship weights + config only


if __name__ == "__main__":
    main()
