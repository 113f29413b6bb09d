"""Throughput of restore and segment on one device, end to end through OME-Zarr, against the
device's measured matrix-multiply rate.

    python bench/gpu.py --device cuda                       # H100: about 5 minutes
    python bench/gpu.py --device cuda --quick               # H100: about 2 minutes
    python bench/gpu.py --device cpu --size 512 --quick     # a CPU smoke run (CPU numbers)

A synthetic image (`microdiff.simulate`, 1024 x 1024 mirrored up to --size, 2 channels, uint16)
is written as OME-Zarr with the workflow's chunking, normalized and tiled (512 px tiles, halo
32, one shard); ingest is not timed. Each row runs the stage's shard function over the whole
image (zarr read of the halo tiles, the network, zarr write of the shard store, with the read of
the next batch overlapped) with the shipped models (src/microdiff/models/restore, segment_nuclei),
loaded once per precision setting (as a shard job would, its load not timed); the gather (NGFF
image, pyramid; for segment also the instance labels and the object table) is timed once per
stage and added to give end-to-end megapixels per second.

FLOPs per pixel per network evaluation are counted by `torch.utils.flop_counter.FlopCounterMode`
on one 256 x 256 tile (convolutions and matrix multiplies; element-wise work is not counted).
The matmul rate is the best of N square matrix multiplies (bf16, and fp32 without TF32).
Achieved FLOP/s counts the network work actually done (tile + halo (+ segment's mirrored pad)),
and the roofline fraction divides it by the measured matmul rate of the precision used (bf16
off: fp32, although cuDNN runs fp32 convolutions as TF32 by torch's default).
Rows: the config defaults (restore: one Tweedie evaluation; segment: DDIM, K = 4 samples x 2
steps) at each precision setting (CUDA: fp32; bf16; bf16 + channels-last; bf16 + channels-last +
torch.compile, whose "first s" includes compiling), then every sampler and NFE at bf16 +
channels-last; last, both stages with the network replaced by the identity ("no network"): the
zarr I/O and CPU work alone, the ceiling that no network speed-up can pass. Batch: "auto" (free
GPU memory; the CPU default on a CPU).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr
from torch.utils.flop_counter import FlopCounterMode

from microdiff import normalize, shards, simulate
from microdiff.diffusion import accel, load_checkpoint, nfe, pick_device, set_threads
from microdiff.io import ngff
from microdiff.normalize import Normalizer
from microdiff.restore.denoise import plane_batch
from microdiff.restore.noise_model import NoiseModel
from microdiff.restore.stage import DEFAULT_MODEL as RESTORE_MODEL
from microdiff.restore.stage import gather_restore, load_model, make_process
from microdiff.segment.inputs import DEFAULT_MODEL as SEGMENT_MODEL
from microdiff.segment.inputs import PAD
from microdiff.segment.model import Model, tile_batch
from microdiff.segment.stage import segment_gather, segment_shard
from microdiff.tiling import plan_store

TILE, HALO = 512, 32


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def matmul_tflops(dev, dtype, n: int, reps: int) -> float:
    """Best-of-`reps` rate of an n x n x n matrix multiply, TFLOP/s."""
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):  # the first is a warm-up
        sync(dev)
        t = time.perf_counter()
        a @ b
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12


def copy_gbs(dev, mb: int, reps: int) -> float:
    """Best-of-`reps` device memory copy rate (read + write), GB/s."""
    x = torch.empty(mb << 18, device=dev)  # mb MiB of float32
    y = torch.empty_like(x)
    best = float("inf")
    for _ in range(reps + 1):
        sync(dev)
        t = time.perf_counter()
        y.copy_(x)
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * x.numel() * 4 / best / 1e9


def flops_per_pixel(den, channels: int, cond: int = 0, size: int = 256) -> float:
    """Counted FLOPs of one network evaluation per pixel (on a CPU copy of the shapes)."""
    x = torch.zeros(1, channels, size, size)
    c = torch.zeros(1, cond, size, size) if cond else None
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        den.cpu()(x, 1.0, c)
    return fc.get_total_flops() / size**2


def make_image(root: Path, size: int) -> tuple[Path, Path, pd.DataFrame]:
    """raw.ome.zarr (2 channels, uint16), norm.json and the tile plan of a size x size image."""
    sim = simulate.simulate_image((1024, 1024), seed=0)
    reps = -(-size // 1024)
    img = np.concatenate([sim.noisy, sim.noisy[:, ::-1]], axis=1)  # mirrored: no seams
    img = np.concatenate([img, img[:, :, ::-1]], axis=2)
    img = np.tile(img, (1, reps, reps))[:, :size, :size]
    raw = root / "raw.ome.zarr"
    group = ngff.create_image(raw, img.shape, img.dtype, "cyx", {"y": 0.65, "x": 0.65},
                              list(sim.channels))  # fmt: skip
    group["0"][:] = img
    ngff.fill_pyramid(group)
    norm = root / "norm.json"
    normalize.compute([raw], out_path=norm)
    return raw, norm, plan_store(raw, TILE, HALO, tiles_per_shard=1 << 30)


def processed_pixels(plan: pd.DataFrame, grow: int, planes: int = 1) -> int:
    """Pixels the network sees: every tile's padded halo box grown by `grow` in y and x, times
    the planes per tile (restore: one per channel)."""
    shape = shards.tile_shape(plan)
    return len(plan) * planes * int(np.prod([s + grow for s in shape]))


class StandIn(torch.nn.Module):
    """D(x) = x at no cost: rows with it measure the zarr I/O and CPU work alone."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Identity()
        self.net.multiple = 4
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the stand-in a device
        self.sigma_data = 0.5

    def forward(self, x, sigma, cond=None):
        return x


class Bench:
    def __init__(self, args, dev):
        self.args, self.dev = args, dev
        self.root = Path(tempfile.mkdtemp(prefix="gpu-bench-", dir=args.work))
        self.raw, self.norm, self.plan = make_image(self.root, args.size)
        self.mp = args.size**2 / 1e6
        self.rows = []
        self.gather_s = {}

    def clean(self, *paths):
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)

    def restore(self, den, samples, label, flops, gather: bool, repeat: int, batch=None, note=""):
        """One restore row: the shard pass (as `restore_shard`, model already loaded)."""
        src = zarr.open_group(str(self.raw), mode="r")["0"]
        _, cfg = load_checkpoint(RESTORE_MODEL)
        noise = NoiseModel.from_json(cfg["noise"])
        plan = shards.with_halo(self.plan, src.shape[1:], HALO)
        inference = {"halo": HALO, "samples": samples, "seed": 0}
        batch = batch or plane_batch(den, "auto", shards.tile_shape(plan), self.dev)
        inference["batch"] = batch
        norm = Normalizer.from_json(self.norm)
        process = make_process(den, noise, norm, inference, self.dev)
        store = self.root / "restore-shard.zarr"
        times = []
        for _ in range(repeat):
            self.clean(store)
            n_out = src.shape[0] * (2 if samples > 1 else 1)
            sync(self.dev)
            t = time.perf_counter()
            out = shards.create_shard_store(store, (n_out, *src.shape[1:]), np.float32, plan)
            per_read = max(1, batch // src.shape[0])
            shards.run_shard(src, plan, 0, process, out, per_read)
            sync(self.dev)
            times.append(time.perf_counter() - t)
        if gather:
            out_path = self.root / "restored.ome.zarr"
            t = time.perf_counter()
            gather_restore(self.raw, self.plan, [store], RESTORE_MODEL,
                           {"inference": inference}, out_path)  # fmt: skip
            self.gather_s["restore"] = time.perf_counter() - t
            self.clean(out_path)
        self.clean(store)
        n = 1 + (samples if samples > 1 else 0)
        how = "tweedie" + (f"+std K={samples}" if samples > 1 else "") + note
        # one plane per channel, each padded by up to the UNet's multiple (`_align_pad`)
        pixels = processed_pixels(plan, den.net.multiple, src.shape[0])
        self.add("restore", how, n, batch, times, flops, pixels, label)

    def segment(self, model, k, steps, sampler, label, flops, gather: bool, repeat: int, note=""):
        params = {"samples": k, "steps": steps, "sampler": sampler, "seed": 0,
                  "kinds": ["nuclei"], "nuclei_channel": 0}  # fmt: skip
        batch = tile_batch(model, "auto", shards.tile_shape(self.plan), PAD)
        store = self.root / "segment-shard.zarr"
        times = []
        for _ in range(repeat):
            self.clean(store)
            sync(self.dev)
            t = time.perf_counter()
            segment_shard(self.raw, self.plan, 0, store, model, self.norm, params,
                          batch_size=batch, device=str(self.dev))  # fmt: skip
            sync(self.dev)
            times.append(time.perf_counter() - t)
        if gather:
            out, table = self.root / "segmentation.ome.zarr", self.root / "segments.parquet"
            t = time.perf_counter()
            segment_gather(self.raw, self.plan, [store], out, table, self.norm, params)
            self.gather_s["segment"] = time.perf_counter() - t
            self.clean(out)
        self.clean(store)
        n = k * nfe(sampler, steps)
        self.add("segment", f"{sampler} K={k} x {steps}{note}", n, batch, times, flops,
                 processed_pixels(self.plan, 2 * PAD), label)  # fmt: skip

    def add(self, stage, how, n_nfe, batch, times, flops, pixels, label):
        s = times[-1]
        self.rows.append({
            "stage": stage, "sampler": how, "NFE": n_nfe, **label, "batch": batch,
            "shard s": s, "first s": times[0] if len(times) > 1 else np.nan,
            "TFLOP/s": flops * n_nfe * pixels / s / 1e12,
            "_mp": self.mp / s,
        })  # fmt: skip
        r = self.rows[-1]
        print(f"  {stage:8s} {how:22s} NFE {n_nfe:2d} {label} batch {batch}: {s:.2f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        return r


def variants(dev, quick: bool) -> list[dict]:
    """(bf16, channels_last, compile) settings to compare; on a CPU only the plain one."""
    if dev.type != "cuda":
        return [{"bf16": False, "channels_last": False, "compile": False}]
    out = [
        {"bf16": False, "channels_last": False, "compile": False},
        {"bf16": True, "channels_last": False, "compile": False},
        {"bf16": True, "channels_last": True, "compile": False},
    ]
    if not quick:
        out.append({"bf16": True, "channels_last": True, "compile": True})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=None, help="image edge (default 4096 on CUDA, "
                    "2048 with --quick; 512 on a CPU)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="fewer rows (and a 2048 image on CUDA)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default 1 on a CPU, 4 with CUDA: the GPU rules' "
                    "threads in config.yaml)")  # fmt: skip
    ap.add_argument("--io-only", action="store_true", help="only the rows without a network")
    ap.add_argument("--work", default=None, help="scratch folder (default: the system's)")
    args = ap.parse_args()
    dev = pick_device(args.device)
    cuda = dev.type == "cuda"
    set_threads(args.threads or (4 if cuda else 1))
    if args.size is None:
        args.size = (2048 if args.quick else 4096) if cuda else 512
    t_start = time.perf_counter()

    n, reps = (8192, 10) if cuda else (1024, 5)
    peak = {"bf16": matmul_tflops(dev, torch.bfloat16, n, reps),
            "fp32": matmul_tflops(dev, torch.float32, n, reps)}  # fmt: skip
    bw = copy_gbs(dev, 1024 if cuda else 64, reps)
    name = torch.cuda.get_device_name(dev) if cuda else f"CPU ({torch.get_num_threads()} threads)"

    den0, _ = load_model(RESTORE_MODEL)
    seg0 = Model.load(SEGMENT_MODEL, device="cpu")
    f_restore = flops_per_pixel(den0, 1)
    f_segment = flops_per_pixel(seg0.denoiser, 2 * len(seg0.kinds), seg0.cond_channels)

    bench = Bench(args, dev)
    core = " x ".join(str(int(v)) for v in bench.plan.iloc[0][["y1", "x1"]].to_numpy()
                      - bench.plan.iloc[0][["y0", "x0"]].to_numpy())  # fmt: skip
    tiles = f"{len(bench.plan)} tiles of {core} px (chunk-aligned) + halo {HALO}"
    print(f"image {args.size} x {args.size} ({bench.mp:.1f} MP), {tiles}", file=sys.stderr)
    if quick := args.quick:
        seg_grid = [("ddim", 1, 1), ("ddim", 1, 8), ("dpmpp_2m", 1, 4)]
        restore_k = [1]
    else:
        seg_grid = [(s, 1, n) for s in ("ddim", "dpmpp_2m") for n in (1, 2, 4, 8)]
        seg_grid += [("heun", 1, 2), ("heun", 1, 4)]  # 3 and 7 NFE
        restore_k = [1, 2, 4]
    default_seg = ("ddim", 4, 2)  # config.yaml: K = 4 samples x 2 DDIM steps

    vs = [] if args.io_only else variants(dev, quick)
    best = vs[min(2, len(vs) - 1)] if vs else None  # the grid: bf16 + channels-last, eager
    for v in vs:
        accel.configure(v)
        label = {"bf16": v["bf16"], "CL": v["channels_last"], "compile": v["compile"]}
        repeat = 2 if v["compile"] else 1  # compile: the second pass is the steady state
        den, _ = load_model(RESTORE_MODEL)
        seg = Model.load(SEGMENT_MODEL, device=str(dev))
        first = v is vs[0]
        if first:  # warm up (CUDA, cuDNN and the allocator; oneDNN) on the default rows
            bench.restore(den, 1, label, f_restore, False, 1)
            bench.segment(seg, *default_seg[1:], default_seg[0], label, f_segment, False, 1)
            bench.rows.clear()
        bench.restore(den, 1, label, f_restore, first, repeat)
        bench.segment(seg, default_seg[1], default_seg[2], default_seg[0], label, f_segment,
                      first, repeat)  # fmt: skip
        if v is best:
            for k in restore_k[1:]:
                bench.restore(den, k, label, f_restore, False, 1)
            for sampler, k, steps in seg_grid:
                bench.segment(seg, k, steps, sampler, label, f_segment, False, 1)
    accel.configure(None)
    # the same stages with the network replaced by the identity: the I/O and CPU ceiling
    off = {"bf16": False, "CL": False, "compile": False}
    batch, io = (int(bench.rows[0]["batch"]), False) if bench.rows else (16, True)
    bench.restore(StandIn().to(dev), 1, off, 0.0, io, 1, batch=batch, note=", no network")
    stand = Model(StandIn().to(dev), seg0.kinds, seg0.cond_channels)
    bench.segment(stand, default_seg[1], default_seg[2], default_seg[0], off, 0.0, io, 1,
                  note=", no network")  # fmt: skip

    table = pd.DataFrame(bench.rows)
    g = bench.gather_s
    table["gather s"] = table["stage"].map(g)
    table["MP/s shard"] = table["_mp"]
    table["MP/s e2e"] = bench.mp / (table["shard s"] + table["gather s"])
    table["% roofline"] = 100 * table["TFLOP/s"] / np.where(table["bf16"], peak["bf16"],
                                                            peak["fp32"])  # fmt: skip
    table = table.drop(columns=["_mp"])
    kind = "GPU" if cuda else "CPU"
    print(
        f"\n## bench/gpu.py on {name} [{kind} numbers]: {args.size} x {args.size} image "
        f"({bench.mp:.1f} MP), {tiles}\n"
    )
    print(f"measured matmul: bf16 {peak['bf16']:.2f} TFLOP/s, fp32 {peak['fp32']:.2f} TFLOP/s "
          f"({n} x {n}, best of {reps}); device copy {bw:.0f} GB/s")  # fmt: skip
    print(f"FLOPs per pixel per NFE (conv + matmul): restore {f_restore / 1e3:.1f} k, "
          f"segment {f_segment / 1e3:.1f} k")  # fmt: skip
    print(
        f"gather (CPU, once): restore {g.get('restore', np.nan):.2f} s, "
        f"segment {g.get('segment', np.nan):.2f} s (instances + object table)\n"
    )
    fmt = {"shard s": "{:.2f}", "first s": "{:.2f}", "gather s": "{:.2f}", "TFLOP/s": "{:.3g}",
           "MP/s shard": "{:.3g}", "MP/s e2e": "{:.3g}", "% roofline": "{:.3g}"}  # fmt: skip
    shown = table.copy()
    for col, f in fmt.items():
        shown[col] = [("" if pd.isna(x) else f.format(x)) for x in shown[col]]
    print(shown.to_markdown(index=False))

    plain = table[(table["sampler"] == "tweedie") | (table["sampler"] == "ddim K=4 x 2")]
    print("\ndenoise + segment at the config defaults (restore NFE 1, segment ddim K=4 x 2 = 8 "
          "NFE), end to end:")  # fmt: skip
    for lab, part in plain.groupby(["bf16", "CL", "compile"], sort=False):
        r = part.set_index("stage")["MP/s e2e"]
        if {"restore", "segment"} <= set(r.index):
            both = 1 / (1 / r["restore"] + 1 / r["segment"])
            print(f"  bf16={lab[0]} channels_last={lab[1]} compile={lab[2]}: {both:.3g} MP/s")
    io = table[table["sampler"].str.endswith("no network")].set_index("stage")["MP/s e2e"]
    print(f"  no network (zarr I/O and CPU work only): {1 / (1 / io).sum():.3g} MP/s")
    print(f"\n(total bench time {time.perf_counter() - t_start:.0f} s)")
    shutil.rmtree(bench.root, ignore_errors=True)


if __name__ == "__main__":
    main()
