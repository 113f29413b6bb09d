"""The generate stage over files: annotated pairs in, synthetic image/mask pairs out.

Layout written by `generate_pairs` (one folder, one store per pair, so a pair can be opened in
any NGFF viewer on its own):

    <out>/pair-0000.ome.zarr     NGFF 0.4 image (c, y, x) float32, percentile-normalized units,
                                 with labels/nuclei (int32, ids 1..N; classes as image-label
                                 properties) and provenance in the `microdiff` attribute
    <manifest>.parquet           one row per pair: pair, path (relative to the manifest), seed,
                                 n_objects, height, width, contrast (object vs background,
                                 `model.contrast`), classes (list, class of id i + 1),
                                 class_counts; provenance in the schema metadata (`microdiff`)

`read_pairs(manifest)` gives them back as (images, labels) in the form the segment trainer takes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from .. import provenance
from ..atomic import atomic_output
from ..errors import InputError
from ..io import ngff
from ..io.labels import create_labels, fill_label_pyramid, set_colors
from ..normalize import percentile_norm
from .masks import ObjectBank, sample_layout
from .model import Generator, contrast, synthesize

log = logging.getLogger("microdiff.generate")
MAX_PAIRS = 4096  # noise origins of pair i start at (i * 2^20, 0)


def pair_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])


def read_classes(path) -> dict[int, int]:
    """An object table (CSV/TSV/parquet) with columns id, class -> {id: class index}."""
    path = Path(path)
    if path.suffix == ".parquet":
        t = pd.read_parquet(path)
    else:
        t = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt") else ",")
    if not {"id", "class"} <= set(t.columns):
        raise InputError(str(path), "a class table needs columns id and class")
    return {int(i): int(c) for i, c in zip(t["id"], t["class"])}


def read_labels(path) -> np.ndarray:
    """An instance label image: TIFF (any integer type), or a Zarr array / NGFF labels image."""
    path = str(path)
    try:
        if path.rstrip("/").endswith(".zarr") or Path(path, "zarr.json").exists():
            node = zarr.open(path, mode="r")
            lab = node["0"][...] if isinstance(node, zarr.Group) else node[...]
        else:
            import tifffile

            lab = tifffile.imread(path)
    except (OSError, ValueError, KeyError) as err:
        raise InputError(path, f"cannot read labels ({err})") from err
    lab = np.squeeze(np.asarray(lab))
    if not np.issubdtype(lab.dtype, np.integer) or lab.ndim != 2:
        raise InputError(path, f"labels must be a 2D integer image, not {lab.ndim}D {lab.dtype}")
    return lab.astype(np.int32)


def table_rows(tsv, classes: bool = True) -> list[tuple[str, str, str | None]]:
    """(image, nuclei labels, class table or None) per row of a pairs TSV with columns image,
    nuclei[, classes]; paths relative to the TSV."""
    tsv = Path(tsv)
    if not tsv.is_file():
        raise InputError(str(tsv), "no such pairs table")
    t = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    if not {"image", "nuclei"} <= set(t.columns):
        raise InputError(str(tsv), "needs columns image and nuclei (and optionally classes)")
    return [
        (str(tsv.parent / r["image"]), str(tsv.parent / r["nuclei"]),
         str(tsv.parent / r["classes"]) if classes and r.get("classes") else None)
        for r in t.to_dict("records")
    ]  # fmt: skip


def load_annotated(table, channels: Sequence | None = None, classes: bool = True) -> dict:
    """Annotated pairs of a pairs TSV (see `table_rows`), loaded by `load_annotated_rows`."""
    return load_annotated_rows(table_rows(table, classes), channels)


def load_annotated_rows(rows, channels: Sequence | None = None) -> dict:
    """Annotated pairs from (image, nuclei labels, class table or None) rows: images
    percentile-normalized per channel, `channels` (indices or names; default all) picked;
    labels int32; classes {id: class} per pair when every pair has a class table."""
    from ..io.readers import open_image, resolve_channel

    images, labels, classes, names = [], [], [], None
    for image, nuclei, cl in rows:
        src = open_image(image)
        all_names = src.channel_names or [f"c{i}" for i in range(src.shape[0])]
        idx = [resolve_channel(all_names, c) for c in (channels or range(src.shape[0]))]
        img = src.read()[idx].astype(np.float32)
        lab = read_labels(nuclei)
        if img.ndim != 3 or lab.shape != img.shape[1:]:
            raise InputError(image, f"needs a 2D image the shape of its labels {lab.shape}")
        names = names or [all_names[i] for i in idx]
        images.append(percentile_norm(img))
        labels.append(lab)
        classes.append(read_classes(cl) if cl else None)
    has = [c is not None for c in classes]
    return {
        "images": images,
        "labels": labels,
        "classes": classes if has and all(has) else None,
        "channel_names": names or [],
    }


def input_rows(inputs, classes: bool = True) -> list[tuple[str, str, str | None]]:
    """(image, nuclei labels, class table or None) per annotated pair, from the stage's inputs:
    one pairs TSV (see `table_rows`), or the demo's simulated images (the truth labels and
    object table `simulate.write_sample` writes beside them)."""
    inputs = [str(i) for i in inputs]
    if len(inputs) == 1 and inputs[0].endswith((".tsv", ".txt")):
        return table_rows(inputs[0], classes)
    rows = []
    for img in inputs:
        p = Path(img)
        name, truth = p.name.split(".")[0], p.parent.parent / "truth"
        table = truth / f"{name}_objects.csv"
        rows.append((img, str(truth / f"{name}_nuclei.tif"), str(table) if classes else None))
    return rows


def load_inputs(inputs, params: dict) -> dict:
    """The annotated pairs of the stage's inputs (`input_rows`) with the rule's params."""
    rows = input_rows(inputs, classes=params.get("classes", True))
    return load_annotated_rows(rows, params.get("channels"))


def write_pair(path, image: np.ndarray, labels: np.ndarray, classes, attrs: dict, names) -> None:
    """One NGFF image (c, y, x) float32 with labels/nuclei."""
    group = ngff.create_image(
        path, image.shape, np.float32, "cyx", {"y": 1.0, "x": 1.0}, list(names),
        attrs=attrs, name="synthetic",
    )  # fmt: skip
    group["0"][...] = image.astype(np.float32)
    ngff.fill_pyramid(group)
    ngff.set_display_windows(group)
    lab = create_labels(group, ["nuclei"], labels.shape, {"y": 1.0, "x": 1.0}, attrs=attrs)
    g = lab["nuclei"]
    g["0"][...] = labels.astype(np.int32)
    fill_label_pyramid(g)
    ids = np.arange(1, int(labels.max()) + 1)
    set_colors(g, ids)
    if classes is not None and len(classes):
        meta = dict(g.attrs["image-label"])
        meta["properties"] = [
            {"label-value": int(i), "class": int(c)} for i, c in zip(ids, classes)
        ]
        g.attrs["image-label"] = meta


def generate_pairs(
    model,
    annotated: dict,
    out,
    manifest,
    params: dict | None = None,
    inputs: dict | None = None,
    device: str = "auto",
) -> pd.DataFrame:
    """Sample `params['pairs']` new masks from the annotated objects and an image for each.

    params: pairs, shape ([y, x]; null: the first annotated image's shape), seed, sampler,
    steps, sigma_max, batch, masks: {density_scale, max_overlap, scale}.
    """
    p = dict(params or {})
    n = int(p.get("pairs", 8))
    if n > MAX_PAIRS:
        raise ValueError(f"at most {MAX_PAIRS} pairs per run")
    gen = model if isinstance(model, Generator) else Generator.load(model, device=device)
    bank = ObjectBank.from_labels(annotated["labels"], annotated.get("classes"))
    if gen.n_classes and bank.n_classes > gen.n_classes:
        raise ValueError(f"annotations have {bank.n_classes} classes, model {gen.n_classes}")
    shape = tuple(p.get("shape") or annotated["labels"][0].shape)
    mk = dict(p.get("masks") or {})
    seed, batch = int(p.get("seed", 0)), int(p.get("batch", 4))
    layouts = []
    for i in range(n):
        rng = np.random.default_rng(pair_seed(seed, i))
        layouts.append(
            sample_layout(
                bank, shape, rng,
                density_scale=float(mk.get("density_scale", 1.0)),
                max_overlap=float(mk.get("max_overlap", 0.0)),
                scale=tuple(mk.get("scale", (0.85, 1.15))),
            )
        )  # fmt: skip
    prov = provenance.record(
        "generate", p, inputs=inputs or {}, model_hash=gen.hash, seed=seed,
        method="diffusion (mask-conditioned UNet, EDM)", bank=bank.stats(),
    )  # fmt: skip
    rows = []
    out, manifest = Path(out), Path(manifest)
    with atomic_output(out) as tmp:
        tmp.mkdir(parents=True)
        for b0 in range(0, n, batch):
            part = layouts[b0 : b0 + batch]
            imgs = synthesize(
                gen, [lay.labels for lay in part],
                [lay.classes for lay in part] if gen.n_classes else None,
                seed=seed, sampler=p.get("sampler", "dpmpp_2m"), steps=int(p.get("steps", 12)),
                sigma_max=float(p.get("sigma_max", 40.0)),
                origins=[(i << 20, 0) for i in range(b0, b0 + len(part))],
            )  # fmt: skip
            for j, (lay, img) in enumerate(zip(part, imgs)):
                i = b0 + j
                name = f"pair-{i:04d}.ome.zarr"
                cl = lay.classes if bank.n_classes else None
                attrs = {"microdiff": {**prov, "pair": i, "pair_seed": pair_seed(seed, i)}}
                write_pair(tmp / name, img, lay.labels, cl, attrs, gen.channel_names)
                counts = np.bincount(np.clip(lay.classes, 0, None), minlength=bank.n_classes)
                rows.append({
                    "pair": i, "path": f"{out.name}/{name}", "seed": pair_seed(seed, i),
                    "n_objects": int(lay.labels.max()), "height": shape[0], "width": shape[1],
                    "contrast": contrast(img, lay.labels),
                    "classes": [int(c) for c in lay.classes],
                    "class_counts": [int(c) for c in counts] if bank.n_classes else [],
                })  # fmt: skip
            log.info("pairs %d-%d of %d written", b0, b0 + len(part) - 1, n)
    try:
        rel = out.resolve().relative_to(manifest.resolve().parent)
    except ValueError:
        rel = out.resolve()
    table = pd.DataFrame(rows)
    table["path"] = [str(rel / Path(s).name) for s in table["path"]]
    provenance.write_table(manifest, table, prov)
    return table


def read_pairs(manifest, channels: Sequence[int] | None = None):
    """Synthetic pairs of a manifest -> (images, labels): images (C, Y, X) float32 normalized per
    channel like the real training images, labels a one-element list [nuclei] per image (the
    segment trainer's form). `channels` picks image channels."""
    manifest = Path(manifest)
    table = pd.read_parquet(manifest)
    images, labels = [], []
    for rel in table["path"]:
        g = zarr.open_group(str(manifest.parent / rel), mode="r")
        img = np.asarray(g["0"][...], np.float32)
        if channels is not None:
            img = img[list(channels)]
        images.append(percentile_norm(img))
        labels.append([np.asarray(g["labels/nuclei/0"][...], np.int32)])
    return images, labels


def train_stage(annotated: dict, out, params: dict | None = None, threads=None, device="auto"):
    """Train the stage's model (params: the `training` section) on loaded annotated pairs."""
    from .model import train_generator

    t = dict(params or {})
    classes = annotated.get("classes")
    n_classes = 0
    if classes is not None:
        n_classes = max((max(c.values(), default=-1) for c in classes), default=-1) + 1
    cl = None
    if n_classes:
        cl = [
            [c.get(i, -1) for i in range(1, int(lab.max()) + 1)]
            for c, lab in zip(classes, annotated["labels"])
        ]
    return train_generator(
        annotated["images"], annotated["labels"], out, classes=cl, n_classes=n_classes,
        channel_names=annotated.get("channel_names"), steps=int(t.get("steps", 2000)),
        batch=int(t.get("batch", 8)), patch=int(t.get("patch", 64)),
        width=int(t.get("width", 32)), depth=int(t.get("depth", 3)),
        lr=float(t.get("lr", 1e-3)), seed=int(t.get("seed", 0)), threads=threads,
        device=device, extra_config={"params": t},
    )  # fmt: skip


def examples(model, annotated: dict, path, params: dict | None = None, device="auto") -> dict:
    """Whole-image samples for the report: conditioned on new masks from the annotated objects
    (one per class, all objects of that class, when classes are known), beside a real image."""
    from .figure import examples_figure

    p = dict(params or {})
    gen = model if isinstance(model, Generator) else Generator.load(model, device=device)
    bank = ObjectBank.from_labels(annotated["labels"], annotated.get("classes"))
    shape = tuple(p.get("shape") or annotated["labels"][0].shape)
    seed = int(p.get("seed", 0)) + 7919
    n = int(p.get("examples", 3))
    weights = [None] * n
    titles = [f"synthetic {i + 1}" for i in range(n)]
    if gen.n_classes and bank.n_classes:
        weights = [np.eye(bank.n_classes)[c % bank.n_classes] for c in range(n)]
        titles = [f"class {c % bank.n_classes} only" for c in range(n)]
    layouts = [
        sample_layout(bank, shape, np.random.default_rng(pair_seed(seed, i)),
                      class_weights=weights[i])
        for i in range(n)
    ]  # fmt: skip
    imgs = synthesize(
        gen, [lay.labels for lay in layouts],
        [lay.classes for lay in layouts] if gen.n_classes else None, seed=seed,
        sampler=p.get("sampler", "dpmpp_2m"), steps=int(p.get("steps", 12)),
        sigma_max=float(p.get("sigma_max", 40.0)),
    )  # fmt: skip
    real = (annotated["images"][0], annotated["labels"][0])
    examples_figure(imgs, [lay.labels for lay in layouts], path, titles, real=real)
    return {"examples": n, "class_conditional": bool(gen.n_classes and bank.n_classes)}
