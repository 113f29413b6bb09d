"""The `microdiff` command line: every stage runnable without Snakemake.

Each subcommand calls the same package function the workflow's scripts call (`commands`). Input
errors print one line naming the file and the problem, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import commands as c
from .errors import AxesUnknown, InputError


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


def _tiled_sampling(s, tile: int, halo: int, samples_help: str) -> None:
    """The options of a command that samples a diffusion model over an image tile by tile
    (restore, superres): tiling, batch, K samples per pixel, seed and CPU threads."""
    s.add_argument("--tile", type=int, default=tile)
    s.add_argument("--halo", type=int, default=halo)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--samples", type=int, default=1, help=samples_help)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None)


def _simulate_command(sub) -> None:
    s = sub.add_parser("simulate", help="make a synthetic experiment with ground truth")
    s.add_argument("out", help="output folder (images/, truth/, samples.tsv)")
    s.add_argument("--samples", type=int, default=3)
    s.add_argument("--shape", type=int, nargs="+", default=[1024, 1024], help="[z] y x")
    s.add_argument("--photons", type=float, default=30.0, help="peak photons per pixel")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=c.cmd_simulate)


def _ingest_command(sub) -> None:
    s = sub.add_parser("ingest", help="TIFF/OME-TIFF/Zarr/OME-Zarr/PNG/JPEG -> NGFF OME-Zarr")
    s.add_argument("image")
    s.add_argument("out", help="output .ome.zarr")
    s.add_argument("--axes", help="axes of the input where its metadata does not say, e.g. cyx")
    s.add_argument("--channels", help="comma-separated channel names")
    s.add_argument("--pixel-size", type=float, help="pixel size in micrometers (y and x)")
    s.set_defaults(func=c.cmd_ingest)


def _tiles_command(sub) -> None:
    s = sub.add_parser("tiles", help="tile plan (parquet) of an OME-Zarr image")
    s.add_argument("store")
    s.add_argument("out", help="output .parquet")
    s.add_argument("--tile", type=int, default=512)
    s.add_argument("--halo", type=int, default=32)
    s.add_argument("--tiles-per-shard", type=int, default=64)
    s.set_defaults(func=c.cmd_tiles)


def _normalize_command(sub) -> None:
    s = sub.add_parser("normalize", help="per-channel robust statistics (pooled over stores)")
    s.add_argument("stores", nargs="+", help="one or more OME-Zarr images")
    s.add_argument("--out", required=True, help="output norm.json")
    s.add_argument("--percentiles", default="1,99.8", help="low,high (default 1,99.8)")
    s.add_argument(
        "--illumination",
        help="profiles (microdiff illumination): statistics of the "
        "corrected images, and every stage given this norm.json reads them corrected",
    )
    s.set_defaults(func=c.cmd_normalize)


def _illumination_command(sub) -> None:
    s = sub.add_parser("illumination", help="flat-field/dark-field profiles over images (BaSiC)")
    s.add_argument("stores", nargs="+", help="ingested OME-Zarr images of one microscope setup")
    s.add_argument("--out", required=True, help="output illumination.ome.zarr")
    s.add_argument("--working-size", type=int, default=128, help="grid of the estimate")
    s.add_argument("--max-images", type=int, default=64, help="image planes sampled")
    s.add_argument("--no-darkfield", action="store_true", help="flat-field only")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=c.cmd_illumination)


def _segment_command(sub) -> None:
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
    s.add_argument(
        "--cell-model",
        default="shipped",
        help="cells beside a nuclei-only --model: shipped (the shipped cell model), a "
        "checkpoint dir, or none (the non-diffusion fallback)",
    )
    s.add_argument("--samples", type=int, default=4, help="K samples per pixel")
    s.add_argument("--steps", type=int, default=1, help="DDIM steps per sample")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    s.set_defaults(func=c.cmd_segment)


def _features_command(sub) -> None:
    s = sub.add_parser("features", help="per-object features of one sample (objects.parquet)")
    s.add_argument("segmentation", help="segmentation.ome.zarr (NGFF labels group)")
    s.add_argument("images", nargs="+", help="raw.ome.zarr [restored.ome.zarr] on that grid")
    s.add_argument("--out", required=True, help="output objects.parquet")
    s.add_argument("--sample", default="", help="sample name written in the table")
    s.add_argument("--segments", help="segments.parquet (per-object uncertainty)")
    s.add_argument("--tile", type=int, default=None, help="tile edge (pixels)")
    s.add_argument("--neighbor-distance", type=float, default=2.0)
    s.set_defaults(func=c.cmd_features)


def _classify_command(sub) -> None:
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
    s.set_defaults(func=c.cmd_classify)


def _restore_train_command(sub) -> None:
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
    s.set_defaults(func=c.cmd_restore_train)


def _restore_command(sub) -> None:
    s = sub.add_parser("restore", help="denoise an NGFF image with a restore model")
    s.add_argument("image", help="raw .ome.zarr")
    s.add_argument("out", help="output restored .ome.zarr")
    s.add_argument("--norm", required=True, help="the image's norm.json")
    s.add_argument("--model", required=True, help="model folder from restore-train")
    _tiled_sampling(s, tile=512, halo=32, samples_help="K > 1: posterior std too")
    s.set_defaults(func=c.cmd_restore)


def _superres_command(sub) -> None:
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
    s.add_argument("--sampler", default="dpmpp_2m", choices=["dpmpp_2m", "ddim"])
    s.add_argument("--steps", type=int, default=1, help="sampler steps per sample")
    _tiled_sampling(s, tile=256, halo=16, samples_help="K > 1: mean of K + posterior std")
    s.set_defaults(func=c.cmd_superres)


def _generate_command(sub) -> None:
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
    s.set_defaults(func=c.cmd_generate)


COMMANDS = (
    _simulate_command,
    _ingest_command,
    _tiles_command,
    _normalize_command,
    _illumination_command,
    _segment_command,
    _features_command,
    _classify_command,
    _restore_train_command,
    _restore_command,
    _superres_command,
    _generate_command,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="microdiff", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
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
