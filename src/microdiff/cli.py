"""The `microdiff` command line: every stage runnable without Snakemake.

Each subcommand calls the same package function the workflow's scripts call. Input errors print
one line naming the file and the problem, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import InputError


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
    )
    return {"channels": stats["channels"]}


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

    s = sub.add_parser("ingest", help="TIFF/OME-TIFF/Zarr/OME-Zarr -> NGFF OME-Zarr")
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
    s.set_defaults(func=cmd_normalize)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.func(args)
    except (InputError, ValueError) as err:
        print(f"microdiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
