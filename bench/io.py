"""Zarr I/O benchmark: write/read throughput and compression ratio by codec, level and chunk size.

    python bench/io.py [--size 4096] [--work /tmp/microdiff-io] [--repeat 2]

Writes and reads back a size x size image (one channel, layout (c, y, x) like the stage outputs)
as uint16 (a simulated noisy microscopy image, tiled from one `microdiff.simulate` block: the
raw store) and float32 (the same image smoothed, in [0, 1]-ish units: like a restored image) with
Blosc lz4 / zstd at levels 1, 3, 5 (bit-shuffle), plain zstd at levels 1 and 3, and square
chunks of 256, 512, 1024 pixels. Writes and reads go chunk row by chunk row (as the stages stream
them). MB/s counts uncompressed bytes per CPU second of the process (all threads; on a shared
machine wall time is mostly waiting); ratio = uncompressed / stored bytes. The best of
`--repeat` runs is kept. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc, Zstd


def image(n: int) -> dict[str, np.ndarray]:
    from scipy import ndimage as ndi

    from microdiff.simulate import simulate_image

    block = simulate_image((1024, 1024), channels=("nuclei",), seed=0).noisy[0]
    tiled = np.tile(block, (n // 1024, n // 1024)).astype(np.uint16)
    smooth = ndi.gaussian_filter(block.astype(np.float32), 1.5)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return {"uint16": tiled[None], "float32": np.tile(smooth, (n // 1024, n // 1024))[None]}


def stored_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one(path: Path, data: np.ndarray, codec, chunk: int) -> tuple[float, float, float]:
    """(write CPU s, read CPU s, ratio): CPU time of this process, all its threads."""
    shutil.rmtree(path, ignore_errors=True)
    n = data.shape[-1]
    t0 = time.process_time()
    arr = zarr.create_array(
        str(path), shape=data.shape, dtype=data.dtype, chunks=(1, chunk, chunk),
        compressors=codec, zarr_format=2, fill_value=0,
    )  # fmt: skip
    for y in range(0, n, chunk):
        arr[:, y : y + chunk] = data[:, y : y + chunk]
    t_write = time.process_time() - t0
    t0 = time.process_time()
    arr = zarr.open_array(str(path), mode="r")
    for y in range(0, n, chunk):
        np.asarray(arr[:, y : y + chunk])
    t_read = time.process_time() - t0
    return t_write, t_read, data.nbytes / stored_bytes(path)


def codecs() -> list[tuple[str, int, object]]:
    out = []
    for cname in ("lz4", "zstd"):
        for level in (1, 3, 5):
            blosc = Blosc(cname=cname, clevel=level, shuffle=Blosc.BITSHUFFLE)
            out.append((f"blosc-{cname}", level, blosc))
    return out + [("zstd", level, Zstd(level=level)) for level in (1, 3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--work", type=Path, default=Path("/tmp/microdiff-io"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--chunks", type=int, nargs="+", default=[256, 512, 1024])
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    data = image(a.size)
    print(f"{a.size} x {a.size}, best of {a.repeat}; MB of uncompressed bytes per CPU second")
    print("| dtype | codec | level | chunk | write MB/s | read MB/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for dtype, arr in data.items():
        mb = arr.nbytes / 1e6
        for cname, level, codec in codecs():
            for chunk in a.chunks:
                runs = [one(a.work / "a.zarr", arr, codec, chunk) for _ in range(a.repeat)]
                w, r = min(x[0] for x in runs), min(x[1] for x in runs)
                row = (dtype, cname, level, chunk, mb / w, mb / r, runs[0][2])
                print("| {} | {} | {} | {} | {:.0f} | {:.0f} | {:.2f} |".format(*row), flush=True)
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
