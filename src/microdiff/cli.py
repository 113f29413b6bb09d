"""The `microdiff` command line: every stage runnable without Snakemake.

Each subcommand calls the same package function the workflow's scripts call. Input errors print
one line naming the file and the problem, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import AxesUnknown, InputError


def _floats(text: str) -> list[float]:
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
    tiling.write_plan(plan, a.out, provenance.record("tiles", params, inputs=[a.store]))
    return {"tiles": len(plan), "shards": tiling.n_shards(plan)}


def cmd_normalize(a) -> dict:
    from . import normalize

    stats = normalize.compute(
        a.stores,
        _floats(a.percentiles),
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
    features.write_objects(a.out, table, record)
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
    import tempfile

    import pandas as pd

    from .segment.stage import segment_image
    from .tiling import plan_store

    plan = pd.read_parquet(a.plan) if a.plan else plan_store(a.image, a.tile, a.halo, 16)
    params = {"samples": a.samples, "steps": a.steps, "seed": a.seed, "kinds": a.kinds.split(",")}
    with tempfile.TemporaryDirectory(dir=str(Path(a.out).parent)) as work:
        return segment_image(
            a.image, a.out, a.table, plan, work, a.model, a.norm, params, device=a.device
        )


def cmd_restore_train(a) -> dict:
    from .restore import train_restore

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


def _paths(value) -> list[Path]:
    values = value if isinstance(value, list) else [value]
    return [Path(v) for v in values if isinstance(v, str) and v and Path(v).exists()]


def check_output(args) -> None:
    """Refuse to replace what the program did not write: an existing output path is an error
    unless --overwrite is given, and even then never one of the command's inputs.

    An empty existing folder holds nothing to lose and is taken as the output.
    """
    out = getattr(args, "out", None)
    if not out:
        return
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    target = out.resolve()
    for key, value in vars(args).items():
        if key in ("out", "func", "command"):
            continue
        for path in _paths(value):
            src = path.resolve()
            if src == target or target in src.parents:
                raise InputError(out, f"the output is also the input {key} ({path}); "
                                 "choose another output path")  # fmt: skip
    if not args.overwrite:
        raise InputError(out, "output exists; pass --overwrite to replace it")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="microdiff", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="make a synthetic experiment with ground truth")
    s.add_argument("out", help="output folder (images/, truth/, samples.tsv)")
    s.add_argument("--samples", type=int, default=3)
    s.add_argument("--shape", type=int, nargs="+", default=[1024, 1024], help="[z] y x")
    s.add_argument("--photons", type=float, default=30.0, help="peak photons per pixel")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("ingest", help="TIFF/OME-TIFF/Zarr/OME-Zarr/PNG/JPEG -> NGFF OME-Zarr")
    s.add_argument("image")
    s.add_argument("out", help="output .ome.zarr")
    s.add_argument("--axes", help="axes of the input where its metadata does not say, e.g. cyx")
    s.add_argument("--channels", help="comma-separated channel names")
    s.add_argument("--pixel-size", type=float, help="pixel size in micrometers (y and x)")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("tiles", help="tile plan (parquet) of an OME-Zarr image")
    s.add_argument("store")
    s.add_argument("out", help="output .parquet")
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--halo", type=int, default=32)
    s.add_argument("--tiles-per-shard", type=int, default=64)
    s.set_defaults(func=cmd_tiles)

    s = sub.add_parser("normalize", help="per-channel robust statistics (pooled over stores)")
    s.add_argument("stores", nargs="+", help="one or more OME-Zarr images")
    s.add_argument("--out", required=True, help="output norm.json")
    s.add_argument("--percentiles", default="1,99.8", help="low,high (default 1,99.8)")
    s.add_argument(
        "--illumination",
        help="profiles (microdiff illumination): statistics of the "
        "corrected images, and every stage given this norm.json reads them corrected",
    )
    s.set_defaults(func=cmd_normalize)

    s = sub.add_parser("illumination", help="flat-field/dark-field profiles over images (BaSiC)")
    s.add_argument("stores", nargs="+", help="ingested OME-Zarr images of one microscope setup")
    s.add_argument("--out", required=True, help="output illumination.ome.zarr")
    s.add_argument("--working-size", type=int, default=128, help="grid of the estimate")
    s.add_argument("--max-images", type=int, default=64, help="image planes sampled")
    s.add_argument("--no-darkfield", action="store_true", help="flat-field only")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_illumination)

    s = sub.add_parser("segment", help="diffusion segmentation -> NGFF labels + object table")
    s.add_argument("image", help="NGFF image (raw.ome.zarr or restored.ome.zarr)")
    s.add_argument("out", help="output segmentation.ome.zarr")
    s.add_argument("--table", required=True, help="output segments.parquet")
    s.add_argument("--norm", help="norm.json (percentile normalization); default: none")
    s.add_argument("--plan", help="tiles.parquet; default: tiles of --tile with --halo")
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--halo", type=int, default=32)
    s.add_argument("--model", help="checkpoint dir; default: the shipped nuclei model")
    s.add_argument("--kinds", default="nuclei", help="nuclei or nuclei,cells")
    s.add_argument("--samples", type=int, default=4, help="K samples per pixel")
    s.add_argument("--steps", type=int, default=1, help="DDIM steps per sample")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    s.set_defaults(func=cmd_segment)

    s = sub.add_parser("features", help="per-object features of one sample (objects.parquet)")
    s.add_argument("segmentation", help="segmentation.ome.zarr (NGFF labels group)")
    s.add_argument("images", nargs="+", help="raw.ome.zarr [restored.ome.zarr] on that grid")
    s.add_argument("--out", required=True, help="output objects.parquet")
    s.add_argument("--sample", default="", help="sample name written in the table")
    s.add_argument("--segments", help="segments.parquet (per-object uncertainty)")
    s.add_argument("--tile", type=int, default=None, help="tile edge (pixels)")
    s.add_argument("--neighbor-distance", type=float, default=2.0)
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("classify", help="classes of objects (supervised, diffusion, clusters)")
    s.add_argument("objects", nargs="+", help="objects.parquet of one or more samples")
    s.add_argument("--out", required=True, help="output classes.parquet")
    s.add_argument(
        "--mode", choices=["supervised", "diffusion", "unsupervised"], default="unsupervised"
    )
    s.add_argument("--labels", help="label table (TSV): sample, class, and id or x, y[, z]")
    s.add_argument(
        "--segmentation", nargs="*", default=[], help="sample=segmentation.ome.zarr (points)"
    )
    s.add_argument("--kind", default="nucleus")
    s.add_argument("--k", type=int, default=None, help="clusters (default: lowest BIC)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--images", nargs="*", default=[], help="sample=raw.ome.zarr (diffusion)")
    s.add_argument("--norms", nargs="*", default=[], help="sample=norm.json (diffusion)")
    s.add_argument(
        "--model", default="models/classify/diffusion", help="diffusion model (trained if empty)"
    )
    s.add_argument(
        "--method",
        choices=["representation", "lowest_error"],
        default="representation",
        help="diffusion mode: embedding + light classifier, or lowest denoising error",
    )
    s.add_argument("--steps", type=int, default=2000, help="diffusion training steps")
    s.add_argument("--crop", type=int, default=32, help="crop edge (pixels), diffusion")
    s.add_argument("--width", type=int, default=32, help="UNet width, diffusion")
    s.set_defaults(func=cmd_classify)
    s = sub.add_parser("restore-train", help="fit the noise model and train the restore model")
    s.add_argument("out", help="model folder (engine checkpoint)")
    s.add_argument("--stores", nargs="+", required=True, help="raw .ome.zarr images")
    s.add_argument("--norms", nargs="+", required=True, help="their norm.json, in order")
    s.add_argument("--pairs", help="TSV noisy, clean: supervised training instead")
    s.add_argument("--init", default="default", choices=["default", "none"])
    s.add_argument("--width", type=int, default=16)
    s.add_argument("--depth", type=int, default=3)
    s.add_argument("--steps", type=int, default=300, help="0: the shipped default as is")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--patch", type=int, default=64)
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_restore_train)

    s = sub.add_parser("restore", help="denoise an NGFF image with a restore model")
    s.add_argument("image", help="raw .ome.zarr")
    s.add_argument("out", help="output restored .ome.zarr")
    s.add_argument("--norm", required=True, help="the image's norm.json")
    s.add_argument("--model", required=True, help="model folder from restore-train")
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--halo", type=int, default=32)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--samples", type=int, default=1, help="K > 1: posterior std too")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("superres", help="super-resolve an NGFF image (x2/x4, diffusion)")
    s.add_argument("image", help="raw or restored .ome.zarr")
    s.add_argument("out", help="output .ome.zarr on the finer grid")
    s.add_argument("--norm", required=True, help="the image's norm.json")
    s.add_argument("--model", required=True, help="model folder (trained first when missing)")
    s.add_argument("--train", action="store_true", help="train even when the model exists")
    s.add_argument("--pairs", help="TSV low, high: train on LR/HR pairs instead")
    s.add_argument("--factor", type=int, default=2, choices=[2, 4])
    s.add_argument("--psf-sigma", type=float, default=1.0, help="degradation PSF (HR pixels)")
    s.add_argument("--train-steps", type=int, default=600)
    s.add_argument("--width", type=int, default=16)
    s.add_argument("--depth", type=int, default=3)
    s.add_argument("--patch", type=int, default=64)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--tile", type=int, default=256)
    s.add_argument("--halo", type=int, default=16)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--sampler", default="dpmpp_2m", choices=["dpmpp_2m", "ddim"])
    s.add_argument("--steps", type=int, default=1, help="sampler steps per sample")
    s.add_argument("--samples", type=int, default=1, help="K > 1: mean of K + posterior std")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_superres)

    s = sub.add_parser("generate", help="synthetic image/mask pairs from annotated pairs")
    s.add_argument("pairs", help="TSV: image, nuclei[, classes] (paths relative to it)")
    s.add_argument("out", help="output folder (pairs/, manifest.parquet)")
    s.add_argument("--model", required=True, help="model folder (trained first when missing)")
    s.add_argument("--train", action="store_true", help="train even when the model exists")
    s.add_argument("--channels", help="comma-separated image channels (names or indices)")
    s.add_argument("--steps", type=int, default=1500, help="training steps")
    s.add_argument("--width", type=int, default=32)
    s.add_argument("--patch", type=int, default=64)
    s.add_argument("-n", type=int, default=16, help="pairs to write")
    s.add_argument("--shape", type=int, nargs=2, default=None, help="y x of each pair")
    s.add_argument("--sample-steps", type=int, default=12, help="DPM-Solver++ steps")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_generate)

    for s in sub.choices.values():
        s.add_argument(
            "--overwrite", action="store_true", help="replace an existing output (never an input)"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        check_output(args)
        result = args.func(args)
    except (InputError, ValueError) as err:
        message = err.for_cli() if isinstance(err, AxesUnknown) else err
        print(f"microdiff {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as err:  # read-only folder, a parent that is a file, disk full: one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"microdiff {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
