"""The segment stage over stores: shard jobs (K-sample diffusion inference per tile batch) and
the gather (stitched probability/uncertainty image, instance labels, per-object table).

Shard store channels, per kind in model order: prob, std, dist, then the K samples' fg and
dist (2K channels), all in [0, 1]. The gather writes `segmentation.ome.zarr` with image channels
`<kind>_prob`, `<kind>_std` per kind, and `labels/<kind>`; and `segments.parquet`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import zarr

from .. import provenance
from ..atomic import atomic_output
from ..gather import ShardReader
from ..io import ngff
from ..io.labels import create_labels, fill_label_pyramid, set_colors
from ..io.readers import resolve_channel
from ..normalize import Normalizer, level0
from ..shards import run_whole, tile_shape, write_shard
from ..tiling import Box, axis_names, iter_tiles
from . import cells as cell_fallback
from . import inputs, instances, scale
from .inputs import DEFAULT_MODEL, PAD, NormalizedChannels
from .represent import kind_channels

log = logging.getLogger("microdiff.segment")
# the gather holds level 0 (image channels and labels) in memory up to this size: a 4096 x 4096
# image's 4 channels and 2 label kinds are 403 MB; a larger image is streamed tile by tile
HELD_BYTES = 512 << 20


def segment_shard(
    image,
    plan: pd.DataFrame,
    shard: int,
    out,
    model_path=None,
    norm_json=None,
    params: dict | None = None,
    batch_size: int = 4,
    device: str = "auto",
    cell_model=None,
    zoom: scale.Scale | None = None,
) -> dict:
    """Run K-sample inference on one shard's tiles; write the shard store `out`.

    cell_model: a cells-only model (checkpoint dir or `Model`) run beside a model without
    cells when `params["kinds"]` asks for cells; its samples follow the model's in the store.
    It is conditioned on the nuclear and cytoplasm channels and, when it takes 3 condition
    channels, on the nuclei found: the model's mean nuclei foreground over its K samples of the
    same tile, in [0, 1] (`nuclei_found`; predict mirrors it by `pad` with the image channels).

    zoom: the image's `segment.scale` (`inputs.image_scale`) where the caller has found it for every
    shard of the image at once (`segment_image`); None: found here (the first pass of `auto`
    over the image's central crop, the same in every shard job)."""
    # the network's modules (torch) here, not at the top: the gather runs without them
    from ..diffusion import accel
    from .model import cell_condition, nfe, nuclei_found, predict, shard_channels, tile_batch

    p = dict(params or {})
    model, cells = inputs.models(model_path, cell_model, p, device)
    source, colour = inputs.source(image, model, cells, p, norm_json)
    extent = tuple(int(plan[f"{a}1"].max()) for a in axis_names(len(source.shape[1:])))
    if extent != tuple(source.shape[1:]):
        raise ValueError(
            f"{image}: grid {source.shape[1:]} differs from the tile plan's {extent} "
            "(segmenting a super-resolved image is not supported; use segment.input: raw)"
        )
    k, steps = int(p.get("samples", 4)), int(p.get("steps", 1))
    if model.distilled_steps and steps != model.distilled_steps:
        log.warning("the model was distilled for %d step(s), sampled here with %d (segment.steps)",
                    model.distilled_steps, steps)  # fmt: skip
    pad = PAD
    sampler, seed = p.get("sampler", "ddim"), int(p.get("seed", 0))

    kinds = list(model.kinds) + (list(cells.kinds) if cells else [])
    per_px = nfe(k, steps, sampler) * (2 if cells else 1)
    if zoom is None:
        zoom = inputs.estimate_scale(model, source, p)
    if zoom.factor != 1 or zoom.method != "fixed":
        log.info("scale %s: objects %s px, the model's %s px: resampled x%g", zoom.method,
                 zoom.measured_px, zoom.model_px, zoom.factor)  # fmt: skip

    def sample(batch, origins):
        cond = batch[:, : model.cond_channels]
        known = zoom.first_samples(cond, origins, steps)  # the first pass's, of this very input
        done = 0 if known is None else min(known.shape[1], k)
        s = predict(model, cond, origins, k, steps, sampler, seed, pad=pad, first=done)
        if done:
            s = np.concatenate([known[:, :done], s], axis=1)
        if cells is None:
            return shard_channels(s)
        # its own noise: a seed the model's samples never use
        cond = cell_condition(cells, batch[:, :2], nuclei_found(s, model.kinds))
        return shard_channels(
            s, predict(cells, cond, origins, k, steps, sampler, seed + 1, pad=pad)
        )

    def process(batch, origins):  # on the model's grid (segment.scale), back on the image's
        return scale.resampled(sample, batch, origins, zoom.factor)

    dev = str(next(model.denoiser.parameters()).device)
    batch_size = tile_batch(model, batch_size, tile_shape(plan), pad)  # "auto": free GPU memory
    meta = {
        "kinds": kinds,
        "samples": k,
        "model": model.hash,
        "cell_model": cells.hash if cells else None,
        "nfe": per_px,
        "device": dev,
        "accel": accel.describe(dev),
        "colour": colour.asdict() if colour else None,
        "sigma_max": model.sigma_max,
        "scale": zoom.asdict(),
    }
    n_ch = len(kinds) * kind_channels(k)
    # a chunk holds one kind's channels: what the gather's windows read together
    n = write_shard(out, source, plan, shard, process, n_ch, batch_size, attrs={"segment": meta},
                    group=kind_channels(k))  # fmt: skip
    log.info("shard %d: %d tiles, %d samples x %d steps%s", shard, n, k, steps,
             " (nuclei and cell models)" if cells else "")  # fmt: skip
    return {"tiles": n, "kinds": kinds, "nfe_per_pixel": per_px}


def window(reader: ShardReader, kind_index: int, box: Box) -> instances.Window:
    """One kind's probability, std, mean distance and K samples over `box`, from the shards."""
    k = int(reader.attrs["segment"]["samples"])
    base = kind_index * kind_channels(k)
    m = reader.read(slice(base, base + kind_channels(k)), box)
    samples = [(m[3 + j], m[3 + k + j]) for j in range(k)]
    return instances.Window(m[0], m[1], m[2], samples)


def segment_gather(
    image,
    plan: pd.DataFrame,
    shard_stores: Sequence,
    out,
    table,
    norm_json=None,
    params: dict | None = None,
    inputs: dict | None = None,
) -> dict:
    """Assemble `segmentation.ome.zarr` (prob/std image, labels) and `segments.parquet`."""
    p = dict(params or {})
    want = list(p.get("kinds", ["nuclei"]))
    reader = ShardReader(shard_stores, plan)
    meta = reader.attrs["segment"]
    kinds = list(meta["kinds"])
    if "nuclei" not in kinds:
        raise ValueError("the segmentation model must produce nuclei")
    src = zarr.open_group(str(image), mode="r")
    shape = tuple(src["0"].shape[1:])
    axes = "c" + "".join(axis_names(len(shape)))
    px_scale = ngff.level0_scale(src)
    cores = [core for _, core, _ in iter_tiles(plan)]
    zoom = meta.get("scale") or {"factor": 1.0}
    ip = scale.params_for(instances.Params.from_config(p), float(zoom["factor"]))
    halo = int(p.get("label_halo", 64))
    cells = "cells" in want
    fallback = cells and "cells" not in kinds
    out_kinds = ["nuclei"] + (["cells"] if cells else [])
    norm = Normalizer.from_json(norm_json) if norm_json else None
    methods = {"nuclei": "diffusion"}
    extra = {}
    if cells:
        methods["cells"] = "diffusion"
        if fallback:
            cyto = NormalizedChannels(
                level0(src, norm),
                [resolve_channel(ngff.channel_labels(src.attrs), p.get("cytoplasm_channel", 1))],
                norm,
            )
            extra["cell_threshold"] = cell_fallback.image_threshold(
                cyto, cores, p.get("cell_threshold", "auto")
            )
            methods["cells"] = (
                "fallback (non-diffusion): smoothed cytoplasm above the image's threshold, "
                f"at most {ip.cell_max_distance:g} px from a nucleus, split by distance to the "
                "nuclei"
            )
            log.warning("model has no cells; cells come from a non-diffusion fallback")
    prov = provenance.record(
        "segment",
        p,
        inputs=inputs or {"image": str(image)},
        model_hash=meta.get("model"),
        cell_model_hash=meta.get("cell_model"),
        samples=meta["samples"],
        nfe_per_pixel=meta.get("nfe"),
        method=methods,
        device=meta.get("device"),
        accel=meta.get("accel"),
        channels=[f"{k}_{m}" for k in out_kinds for m in ("prob", "std")],
        colour_conversion=meta.get("colour"),
        sigma_max=meta.get("sigma_max"),
        scale=meta.get("scale"),
        **extra,
    )
    names = [f"{k}_{m}" for k in out_kinds for m in ("prob", "std")]
    # level 0 assembled in memory (up to HELD_BYTES) and written once, not written tile by tile
    # and read back by the stitching, the tables and the pyramids (issue 15): the same arrays;
    # a small image's whole store is assembled in memory too (`ngff.assembled`)
    held = math.prod(shape) * 4 * (len(names) + len(out_kinds)) <= HELD_BYTES
    small = math.prod(shape) * len(names) <= ngff.BAND_PIXELS
    with atomic_output(out) as tmp, ngff.assembled(tmp, small) as target:
        group = ngff.create_image(
            target,
            (len(names), *shape),
            np.float32,
            axes,
            px_scale,
            names,
            attrs={"microdiff": prov},
            name="segmentation",
        )
        labs = create_labels(group, out_kinds, shape, px_scale, attrs={"microdiff": prov})
        ki = {k: i for i, k in enumerate(kinds)}
        if held:
            dst = np.zeros((len(names), *shape), np.float32)
            lab0 = {k: np.zeros(shape, np.int32) for k in out_kinds}
        else:
            dst, lab0 = group["0"], {k: labs[k]["0"] for k in out_kinds}

        def channels(kind):  # a kind's prob and std in the shard stores
            return [ki[kind] * kind_channels(meta["samples"]) + j for j in (0, 1)]

        def read_kind(kind, at: int, box):  # held: its prob and std into level 0 as they pass
            w = window(reader, ki[kind], box)
            if held:
                dst[(at, *box.slices)], dst[(at + 1, *box.slices)] = w.prob, w.std
            return w

        if not held:  # a window's are not chunk-aligned: level 0 written core by core
            for core in cores:
                dst[(slice(0, 2), *core.slices)] = reader.read(channels("nuclei"), core)
        nuc = lab0["nuclei"]
        facts = instances.stitch(lambda b: read_kind("nuclei", 0, b), cores, shape, nuc, halo, ip)
        log.info("nuclei: %d objects", len(facts["anchor"]))
        rows = [object_table(nuc, dst, 0, cores, "nuclei", facts["consistency"])]
        if cells:

            def read_cells(b):
                if fallback:
                    return cell_fallback.fallback_window(
                        cyto,
                        b,
                        np.asarray(nuc[b.slices]),
                        extra["cell_threshold"]["threshold"],
                    )
                return read_kind("cells", 2, b)

            cell = lab0["cells"]
            cf = instances.link_cells(
                read_cells,
                lambda b: np.asarray(nuc[b.slices]),
                facts["anchor"],
                cores,
                shape,
                cell,
                halo,
                ip,
            )
            if fallback:  # prob and std (the model's: from its windows when held)
                for core in cores:
                    w = read_cells(core)
                    dst[(slice(2, 4), *core.slices)] = np.stack([w.prob, w.std])
            elif not held:
                for core in cores:
                    dst[(slice(2, 4), *core.slices)] = reader.read(channels("cells"), core)
            cons = cf["consistency"] if not fallback else np.full(len(facts["anchor"]), np.nan)
            rows.append(object_table(cell, dst, 2, cores, "cells", cons))
        ngff.fill_pyramid(group, level0=dst if held else None)
        ngff.set_display_windows(group)
        for kind, g in labs.items():
            fill_label_pyramid(g, level0=lab0[kind] if held else None)
        objects = pd.concat(rows, ignore_index=True)
        for name, g in labs.items():
            set_colors(g, objects.loc[objects["kind"] == name, "id"].to_numpy())
    provenance.write_table(table, objects, prov)
    counts = objects["kind"].value_counts().to_dict()
    return {"objects": {k: int(v) for k, v in counts.items()}, "methods": methods}


def object_table(labels, image, prob_channel: int, cores, kind: str, consistency) -> pd.DataFrame:
    """One row per object id: area, centroid, mean probability and mean pixel uncertainty
    (std over the K samples), consistency; computed block by block."""
    nd = labels.ndim
    n = len(consistency)
    area = np.zeros(n + 1)
    cen = np.zeros((nd, n + 1))
    usum, psum = np.zeros(n + 1), np.zeros(n + 1)
    for core in cores:
        lab = np.asarray(labels[core.slices]).ravel()
        if not lab.any():
            continue
        m = lab > 0
        ids = lab[m]
        area += np.bincount(ids, minlength=n + 1)[: n + 1]
        grids = np.meshgrid(
            *[np.arange(a, b) for a, b in zip(core.start, core.stop)], indexing="ij"
        )
        for d in range(nd):
            cen[d] += np.bincount(ids, grids[d].ravel()[m], minlength=n + 1)[: n + 1]
        pr = np.asarray(image[(prob_channel, *core.slices)]).ravel()[m]
        sd = np.asarray(image[(prob_channel + 1, *core.slices)]).ravel()[m]
        psum += np.bincount(ids, pr, minlength=n + 1)[: n + 1]
        usum += np.bincount(ids, sd, minlength=n + 1)[: n + 1]
    present = np.flatnonzero(area[1:] > 0) + 1
    a = area[present]
    t = pd.DataFrame({"kind": kind, "id": present.astype(np.int32)})
    for d, name in enumerate(axis_names(nd)):
        t[f"centroid_{name}"] = cen[d, present] / a
    t["area"] = a.astype(np.int64)
    t["probability"] = psum[present] / a
    t["uncertainty"] = usum[present] / a
    t["consistency"] = np.asarray(consistency, float)[present - 1]
    if kind == "cells":
        t["nucleus_id"] = t["id"]
    return t


def segment_image(
    image,
    out,
    table,
    plan: pd.DataFrame,
    model=None,
    norm_json=None,
    params: dict | None = None,
    device: str = "auto",
    cell_model=None,
    batch_size: int | str = 4,
) -> dict:
    """Every shard, then the gather, in one process (batch jobs, the CLI, tests, benchmarks).

    model and cell_model: checkpoint dirs (loaded once per process: `diffusion.load_shared`)
    or loaded `Model`s."""
    model = inputs.load_model(model or DEFAULT_MODEL, device)
    if cell_model is not None:
        cell_model = inputs.load_model(cell_model, device)

    zoom = inputs.image_scale(image, model, params, norm_json, cell_model, device)  # once per image

    def shard(i, store):
        segment_shard(image, plan, i, store, model, norm_json, params, batch_size, device,
                      cell_model, zoom)  # fmt: skip

    def gather(stores):
        inputs = {"image": str(image), "shards": len(stores)}
        return segment_gather(image, plan, stores, out, table, norm_json, params, inputs)

    return run_whole(plan, out, shard, gather)
