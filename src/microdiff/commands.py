"""The command line's subcommands (`cli` parses the arguments): each calls the package
function the workflow's script for that stage calls, and returns what is printed as JSON."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def cmd_simulate(a) -> dict:
    from .simulate import write_experiment

    return {
        "sheet": str(
            write_experiment(
                a.out, n_samples=a.samples, shape=tuple(a.shape), seed=a.seed, photons=a.photons
            )
        )
    }


def cmd_ingest(a) -> dict:
    from .ingest import ingest

    names = a.channels.split(",") if a.channels else None
    return ingest(a.image, a.out, axes=a.axes, channel_names=names, pixel_size=a.pixel_size)


def cmd_tiles(a) -> dict:
    from . import provenance, tiling

    params = {"tile": a.tile, "halo": a.halo, "tiles_per_shard": a.tiles_per_shard}
    plan = tiling.plan_store(a.store, **params)
    provenance.write_table(a.out, plan, provenance.record("tiles", params, inputs=[a.store]))
    return {"tiles": len(plan), "shards": tiling.n_shards(plan)}


def cmd_normalize(a) -> dict:
    from . import normalize

    stats = normalize.compute(
        a.stores,
        floats(a.percentiles),
        a.out,
        mode="sample" if len(a.stores) == 1 else "experiment",
        illumination=a.illumination,
    )
    return {"channels": stats["channels"], "illumination": a.illumination}


def cmd_illumination(a) -> dict:
    from . import illumination

    params = {"working_size": a.working_size, "max_images": a.max_images,
              "darkfield": not a.no_darkfield, "seed": a.seed}  # fmt: skip
    prov = illumination.estimate(a.stores, params, a.out)
    return {"images": prov["images"], "grid": prov["grid"], "fits": prov["fits"]}


def cmd_features(a) -> dict:
    import pandas as pd

    from . import features, provenance

    segments = pd.read_parquet(a.segments) if a.segments else None
    params = {"tile": a.tile, "neighbor_distance": a.neighbor_distance}
    table = features.measure_sample(
        a.segmentation, a.images, a.sample, segments, a.tile, a.neighbor_distance
    )
    record = provenance.record("features", params, inputs=[a.segmentation, *a.images])
    provenance.write_table(a.out, table, record)
    return {"objects": table["kind"].value_counts().to_dict()}


def _by_sample(items) -> dict[str, str]:
    """`sample=path` arguments as {sample: path}."""
    return dict(item.split("=", 1) for item in items)


def cmd_classify(a) -> dict:
    import pandas as pd

    from . import classify, provenance

    objects = pd.concat([pd.read_parquet(p) for p in a.objects], ignore_index=True)
    segs = _by_sample(a.segmentation)
    params = {"mode": a.mode, "seed": a.seed, "kind": a.kind, "unsupervised": {"k": a.k}}
    ndim = classify.spatial_ndim(objects)
    labels, _ = classify.stage_labels(a.labels, segs, a.kind, ndim)
    if a.mode == "diffusion":
        classes, info = _classify_diffusion(a, objects, labels, params)
    else:
        classes, info, _ = classify.classify_experiment(objects, params, labels)
    classes["class"] = classes["class"].astype(str)
    classify.write_classes(a.out, classes, provenance.record("classify", params, **info))
    keep = ("mode", "accuracy", "f1_macro", "cv", "k")
    return {k: info[k] for k in keep if k in info}


def _classify_diffusion(a, objects, labels, params):
    """The diffusion classifier: train into `--model` when it holds no checkpoint, then
    classify every object (`--method`: from its diffusion representation, or by its lowest
    class-conditional denoising error)."""
    from . import classify

    images, norms = _by_sample(a.images), _by_sample(a.norms)
    for sample in objects["sample"].unique():
        if sample not in images or sample not in norms:
            raise InputError(a.model, f"diffusion mode needs --images and --norms of {sample}")
    params["diffusion"] = diff = {
        "method": a.method,
        "crop": a.crop,
        "steps": a.steps,
        "width": a.width,
    }
    dc = classify.diffusion_method(diff)
    table = classify.classification_table(objects, a.kind)
    if not (Path(a.model) / "config.json").exists():
        if labels is None:
            raise InputError(a.model, "no checkpoint here, and training needs --labels")
        dc.train_experiment(table, labels, images, norms, diff, a.model, seed=a.seed)
    return dc.classify_experiment(table, labels, images, norms, a.model, diff, seed=a.seed)


def cmd_segment(a) -> dict:
    import pandas as pd

    from .segment.stage import segment_image
    from .shipped import SEGMENT_CELLS
    from .tiling import plan_store

    plan = pd.read_parquet(a.plan) if a.plan else plan_store(a.image, a.tile, a.halo, 16)
    params = {"samples": a.samples, "steps": a.steps, "seed": a.seed, "kinds": a.kinds.split(",")}
    cells = {"shipped": SEGMENT_CELLS, "none": None}.get(a.cell_model, a.cell_model)
    return segment_image(a.image, a.out, a.table, plan, a.model, a.norm, params,
                         device=a.device, cell_model=cells)  # fmt: skip


def cmd_restore_train(a) -> dict:
    from .restore.train import train_restore

    keys = ("init", "width", "depth", "steps", "batch", "patch", "lr", "seed")
    training = {k: getattr(a, k) for k in keys}
    params = {"train": a.steps > 0, "pairs": a.pairs, "training": training}
    cfg = train_restore(a.stores, a.norms, params, a.out, threads=a.threads)
    return {"model": a.out, "params_hash": cfg["params_hash"], "mode": cfg["mode"]}


def cmd_restore(a) -> dict:
    from .restore.stage import restore_image

    params = {"inference": {"halo": a.halo, "batch": a.batch, "samples": a.samples,
                            "seed": a.seed}, "superres": {}}  # fmt: skip
    prov = restore_image(a.image, a.norm, a.model, a.out, params, a.tile, threads=a.threads)
    return {"out": a.out, "method": prov["method"], "nfe": prov["nfe"]}


def cmd_superres(a) -> dict:
    from pathlib import Path

    from .restore.superres_stage import superres_image, train_superres

    if a.train or not (Path(a.model) / "config.json").is_file():
        training = {"width": a.width, "depth": a.depth, "steps": a.train_steps, "batch": 8,
                    "patch": a.patch, "lr": a.lr, "seed": a.seed}  # fmt: skip
        params = {"factor": a.factor, "psf_sigma": a.psf_sigma, "cond": "bicubic",
                  "pairs": a.pairs, "training": training}  # fmt: skip
        train_superres([a.image], [a.norm], params, a.model, threads=a.threads)
    inference = {"halo": a.halo, "batch": a.batch, "sampler": a.sampler, "steps": a.steps,
                 "samples": a.samples, "seed": a.seed}  # fmt: skip
    prov = superres_image(a.image, a.norm, a.model, a.out, {"inference": inference}, a.tile,
                          threads=a.threads)  # fmt: skip
    return {"out": a.out, "factor": prov["factor"], "method": prov["method"], "nfe": prov["nfe"]}


def cmd_generate(a) -> dict:
    from pathlib import Path

    from . import generate

    annotated = generate.load_annotated(a.pairs, a.channels.split(",") if a.channels else None)
    if a.train or not (Path(a.model) / "config.json").exists():
        training = {"steps": a.steps, "width": a.width, "patch": a.patch, "seed": a.seed}
        generate.train_stage(annotated, a.model, training, device=a.device)
    out = Path(a.out)
    params = {"pairs": a.n, "shape": a.shape, "steps": a.sample_steps, "seed": a.seed}
    table = generate.generate_pairs(
        a.model, annotated, out / "pairs", out / "manifest.parquet", params, device=a.device
    )
    return {"pairs": len(table), "objects": int(table["n_objects"].sum()),
            "manifest": str(out / "manifest.parquet")}  # fmt: skip
