"""Training the segmentation model from a config section: pairs named in a TSV (image, nuclei
[, cells]; any size, 2D or 3D) or, for the demo, the simulator's truth labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from ..errors import InputError
from ..io.readers import open_image, resolve_channel
from ..normalize import percentile_norm
from .model import train_model
from .represent import MixedSource, PairSource


def demo_pairs(images) -> list[tuple[str, str, str]]:
    """(image, nuclei labels, cell labels) of simulated demo images (`simulate.write_sample`)."""
    rows = []
    for img in images:
        p = Path(img)
        name = p.name.split(".")[0]
        truth = p.parent.parent / "truth"
        rows.append((str(p), str(truth / f"{name}_nuclei.tif"), str(truth / f"{name}_cells.tif")))
    return rows


def table_pairs(tsv) -> list[tuple[str, ...]]:
    """Rows of a pairs TSV with columns image, nuclei[, cells]; paths relative to the TSV."""
    tsv = Path(tsv)
    t = pd.read_csv(tsv, sep="\t", dtype=str)
    if not {"image", "nuclei"} <= set(t.columns):
        raise InputError(str(tsv), "needs columns image and nuclei (and optionally cells)")
    cols = ["image", "nuclei"] + (["cells"] if "cells" in t.columns else [])
    return [tuple(str(tsv.parent / v) for v in row) for row in t[cols].itertuples(index=False)]


def load_pairs(rows, kinds, nuclei_channel=0, cytoplasm_channel=1):
    images, labels = [], []
    for row in rows:
        src = open_image(row[0])
        names = src.channel_names or [f"ch{i}" for i in range(src.shape[0])]
        chans = [resolve_channel(names, nuclei_channel)]
        if "cells" in kinds:
            chans.append(resolve_channel(names, cytoplasm_channel))
        img = percentile_norm(src.read()[chans].astype(np.float32))
        labs = []
        for kind in kinds:
            i = 1 if kind == "nuclei" else 2
            if i >= len(row):
                raise InputError(row[0], f"no {kind} labels given for this image")
            lab = np.asarray(tifffile.imread(row[i])).astype(np.int32)
            if lab.shape != img.shape[1:]:
                raise InputError(row[i], f"labels {lab.shape} differ from image {img.shape[1:]}")
            labs.append(lab)
        images.append(img)
        labels.append(labs)
    return images, labels


def mixed_source(images, labels, synthetic_pairs, ratio: float, patch: int):
    """Real pairs mixed with `synthetic_pairs` ((images, labels), e.g. the generate stage's)
    at `ratio`; None without synthetic pairs."""
    if not synthetic_pairs:
        return None
    s_images, s_labels = synthetic_pairs
    if s_images and s_images[0].shape[0] != np.asarray(images[0]).shape[0]:
        raise ValueError(
            f"synthetic images have {s_images[0].shape[0]} channels, the real training images "
            f"{np.asarray(images[0]).shape[0]}: generate the segment model's channels"
        )
    if len(labels[0]) != 1:
        raise ValueError("synthetic pairs hold nuclei only; the segment model trains more kinds")
    real = PairSource(images, labels, patch=patch)
    fake = PairSource(s_images, s_labels, patch=patch)
    return MixedSource(real, fake, float(ratio))


def train_from_config(
    seg: dict,
    inputs,
    out,
    threads: int | None = None,
    synthetic: dict | None = None,
    synthetic_pairs=None,
) -> dict:
    """`synthetic` ({manifest, ratio}, from the generate stage) and its loaded pairs
    `synthetic_pairs` ((images, labels)): mixed into the training patches at that ratio."""
    ratio = (synthetic or {}).get("ratio", 0.0)
    t = seg.get("training") or {}
    kinds = tuple(k for k in ("nuclei", "cells") if k in seg.get("kinds", ["nuclei"]))
    rows = table_pairs(seg["pairs"]) if seg.get("pairs") else demo_pairs(inputs)
    images, labels = load_pairs(
        rows, kinds, seg.get("nuclei_channel", 0), seg.get("cytoplasm_channel", 1)
    )
    patch = int(t.get("patch", 96))
    res = train_model(
        images,
        labels,
        out,
        source=mixed_source(images, labels, synthetic_pairs, ratio, patch),
        kinds=kinds,
        steps=int(t.get("steps", 1000)),
        batch=int(t.get("batch", 8)),
        patch=patch,
        width=int(t.get("width", 16)),
        depth=int(t.get("depth", 3)),
        lr=float(t.get("lr", 1e-3)),
        seed=int(seg.get("seed", 0)),
        threads=threads,
        extra_config={"trained_on": [r[0] for r in rows], "synthetic": synthetic},
    )
    return {"pairs": len(rows), "kinds": list(kinds), "steps": res.step, "synthetic": synthetic,
            "loss": float(np.mean(res.losses[-50:]))}  # fmt: skip
