"""Ingest benchmark: wall time and peak RSS of streaming a large TIFF into NGFF OME-Zarr.

    python bench/ingest.py [--size 20000] [--workdir /tmp/microdiff-bench-ingest]

Writes a synthetic uint16 image (smooth structure plus noise, so it compresses like real data)
as an uncompressed single-strip TIFF (the layout a naive reader loads whole) and as a
zlib-compressed tiled TIFF, then ingests each in a fresh child process and reports the child's
peak resident memory (ru_maxrss) and wall time. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

CHILD = """
import resource, sys
from microdiff.ingest import ingest
ingest(sys.argv[1], sys.argv[2], progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def band(y0: int, y1: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, y0])
    yy, xx = np.mgrid[y0:y1, 0:width].astype(np.float32)
    smooth = 2000 + 1500 * np.sin(yy / 97.0) * np.cos(xx / 131.0)
    return (smooth + rng.normal(0, 50, smooth.shape)).clip(0, 65535).astype(np.uint16)


def write_inputs(folder: Path, size: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    plain, tiled = folder / "plain.tif", folder / "tiled.tif"
    step = 1024
    if not plain.exists():
        mm = tifffile.memmap(plain, shape=(size, size), dtype=np.uint16)
        for y in range(0, size, step):
            mm[y : y + step] = band(y, min(y + step, size), size, 0)
            mm.flush()
        del mm
    if not tiled.exists():

        def tiles():
            for y in range(0, size, 512):
                rows = band(y, min(y + 512, size), size, 0)
                for x in range(0, size, 512):
                    t = np.zeros((512, 512), np.uint16)
                    part = rows[:, x : x + 512]
                    t[: part.shape[0], : part.shape[1]] = part
                    yield t

        tifffile.imwrite(
            tiled,
            tiles(),
            shape=(size, size),
            dtype=np.uint16,
            tile=(512, 512),
            compression="zlib",
            bigtiff=True,
        )
    return {"uncompressed strip": plain, "zlib tiled 512": tiled}


def run_child(src: Path, out: Path) -> tuple[float, float]:
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    peak_kib = int(proc.stdout.strip().splitlines()[-1])  # the child's own ru_maxrss
    return wall, peak_kib / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=20000)
    p.add_argument("--workdir", default="/tmp/microdiff-bench-ingest")
    p.add_argument("--keep", action="store_true", help="keep the inputs and outputs")
    p.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    folder = Path(a.workdir)
    if a.write_only:
        write_inputs(folder, a.size)
        return
    # Linux carries a process's peak RSS across fork and exec, so the inputs are written by a
    # separate child: the children measured below then start from this small parent.
    cmd = [sys.executable, __file__, "--write-only", "--size", str(a.size), "--workdir", a.workdir]
    subprocess.run(cmd, check=True)
    inputs = {"uncompressed strip": folder / "plain.tif", "zlib tiled 512": folder / "tiled.tif"}
    mpx = a.size * a.size / 1e6
    rows = []
    for name, src in inputs.items():
        wall, peak = run_child(src, folder / f"{src.stem}.ome.zarr")
        size = sum(
            f.stat().st_size for f in (folder / f"{src.stem}.ome.zarr").rglob("*") if f.is_file()
        )
        rows.append((name, wall, peak, mpx / wall, size / 2**20))
    print(
        f"\n### ingest of a {a.size} x {a.size} uint16 TIFF ({mpx * 2 / 1024:.2f} GiB of pixels)\n"
    )
    print("| input layout | wall s | peak RSS MiB | Mpx/s | output MiB (all levels) |")
    print("|---|---|---|---|---|")
    for name, wall, peak, rate, out in rows:
        print(f"| {name} | {wall:.1f} | {peak:.0f} | {rate:.1f} | {out:.0f} |")
    if not a.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
