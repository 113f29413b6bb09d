# Samples, batches, wildcard constraints, the workflow's paths and the input functions shared by
# every stage.
import re
from types import SimpleNamespace

import pandas as pd

import microdiff
from microdiff import samples as sample_sheet
from microdiff import shipped
from microdiff.checks import check_config
from microdiff.generate import settings as generate_settings
from microdiff.io.plate import PLATE_COLUMNS
from microdiff.segment import settings as segment_settings
from microdiff.tiling import n_shards

SAMPLES = sample_sheet.load(config["input"])
# The final targets; each stage file appends the outputs its stage adds.
FINAL_TARGETS = ["results/experiment/samples.tsv"]
PIXELS = sample_sheet.check_channel_counts(SAMPLES, config["input"].get("demo"))
if config["input"].get("sheet"):
    validate(SAMPLES, "../schemas/samples.schema.yaml")
check_config(config, SAMPLES)

# Small samples go through the stages in batches (one job per stage and batch: the rules named
# <stage>_<batch>, defined in a loop in each stage's file); the others, one by one, through the
# per-sample rules, which the sample wildcard below restricts to them.
BATCHES = sample_sheet.batches(
    list(SAMPLES.index),
    PIXELS,
    int(config.get("batch", {}).get("pixels", 0)),
    int(config.get("batch", {}).get("largest", 0)),
)
BATCHED = {s for members in BATCHES.values() for s in members}
ALONE = [s for s in SAMPLES.index if s not in BATCHED]


wildcard_constraints:
    sample="|".join(re.escape(s) for s in ALONE) or "(?!)",


def per_sample(members, input, output, **params):
    """A batch rule's members (its `members` param, read by microdiff.jobs.members): per sample
    its input and output paths and its own params. Each is a function of the sample (called
    like an input function, with a wildcards object), a path template ("results/{sample}/..."
    or a list of them; input and output only) or a value taken as is."""

    def resolve(value, w, templates):
        if callable(value):
            return value(w)
        if templates and isinstance(value, str):
            return value.format(sample=w.sample)
        if templates and isinstance(value, list):
            return [resolve(v, w, templates) for v in value]
        return value

    rows = []
    for s in members:
        w = SimpleNamespace(sample=s)
        row = {"sample": s}
        row["input"] = {k: resolve(v, w, True) for k, v in input.items()}
        row["output"] = {k: resolve(v, w, True) for k, v in output.items()}
        row["params"] = {k: resolve(v, w, False) for k, v in params.items()}
        rows.append(row)
    return rows


def flat(rows, side, name, flag=None):
    """One input or output entry of every member, as one list (for the batch rule's own)."""
    out = []
    for row in rows:
        value = row[side][name]
        for p in value if isinstance(value, list) else [value]:
            out.append(flag(p) if flag else p)
    return out


# The workflow's layout (the package knows none of it): paths that rules and input functions share.
DEMO_IMAGE = "data/demo/images/{sample}.ome.tif"
GENERATE_MODEL = "models/generate"
SYNTHETIC_PAIRS = "results/synthetic/pairs"
SYNTHETIC_MANIFEST = "results/synthetic/manifest.parquet"
SYNTHETIC_EXAMPLES = "results/synthetic/examples.png"
SEGMENT_TRAINED = "models/segment_nuclei"
RESTORE_SHARD = "results/{sample}/restore/shard-{shard}.zarr"
SUPERRES_SHARD = "results/{sample}/superres/shard-{shard}.zarr"
SEGMENT_SHARD = "results/{sample}/segment_shards/{shard}.zarr"


def demo_images(samples):
    """The demo's simulated images (their truth labels and object tables lie beside them)."""
    return [DEMO_IMAGE.format(sample=s) for s in samples]


def image_store(sample, restored):
    """The image a stage reads: the restored one when `restored` (and the restore stage is
    enabled), else the raw one."""
    return f"results/{sample}/{'restored' if restored else 'raw'}.ome.zarr"


def shard_stores(wildcards, pattern):
    """The shard stores of one sample, one per shard of its tile plan: `pattern` with the sample
    and the shard number filled in."""
    n = n_shards(pd.read_parquet(get_tile_plan(wildcards), columns=["shard"]))
    return [pattern.format(sample=wildcards.sample, shard=i) for i in range(n)]


# What a stage reads, as the config says.


def superres_image(sample):
    """What SR reads: the restored image when the restore stage is enabled, else the raw one."""
    return image_store(sample, config.get("restore", {}).get("enabled", False))


def segment_image(sample):
    """The stage's input: restored when asked for and the restore stage is enabled, else raw."""
    restore = config.get("restore") or {}
    wants = config["segment"].get("input", "raw") == "restored"
    return image_store(sample, bool(wants and restore.get("enabled")))


def segment_model():
    """A file that stands for the model: the trained checkpoint's config or the shipped one
    (`segment.shipped`: the nuclei model, or its one-step distilled student)."""
    if segment_settings.training(config):
        return f"{SEGMENT_TRAINED}/config.json"
    return str(shipped.SEGMENT[config["segment"].get("shipped", "nuclei")] / "config.json")


def segment_cell_model():
    """{"cell_model": its config file} when cells are wanted and the model makes none (the
    shipped nuclei models, or a trained one without cells): `segment.cell_model` shipped (the
    shipped cell model) or a checkpoint dir; {} with `none` (the non-diffusion fallback)."""
    seg = config["segment"]
    choice = seg.get("cell_model", "shipped")
    if "cells" not in seg.get("kinds", []) or choice in (None, "none"):
        return {}
    if segment_settings.training(config):  # trained with cells (demo truth, or a cells column)
        return {}
    path = shipped.SEGMENT_CELLS if choice == "shipped" else choice
    return {"cell_model": f"{path}/config.json"}


def segment_train_inputs():
    """The pairs table, or (demo) the simulated images whose truth labels train the model."""
    if config["segment"].get("pairs"):
        return [config["segment"]["pairs"]]
    if not config["input"].get("demo"):
        raise ValueError("segment.train needs segment.pairs unless the input is the demo")
    return demo_images(SAMPLES.index)


def synthetic_mix():
    """With generate.train_segment, the synthetic pairs train_segment mixes in: {manifest,
    ratio}; else {}."""
    ratio = generate_settings.segment_ratio(config)
    return {} if ratio is None else {"manifest": SYNTHETIC_MANIFEST, "ratio": ratio}


def synthetic_inputs():
    """train_segment's named input for the mix, only when it is on."""
    return {"synthetic": SYNTHETIC_MANIFEST} if synthetic_mix() else {}


def synthetic_params():
    """train_segment's named params for the mix, only when it is on (so a workflow without it
    keeps train_segment's params, and its model, as they were)."""
    mix = synthetic_mix()
    return {"synthetic": mix} if mix else {}


def generate_inputs():
    """The files the annotated pairs come from: a pairs TSV (generate.pairs, else
    segment.pairs), or with the demo its simulated images (truth labels and classes beside)."""
    table = config["generate"].get("pairs") or (config.get("segment") or {}).get("pairs")
    if table:
        return [table]
    if not config["input"].get("demo"):
        raise ValueError(
            "generate needs generate.pairs (or segment.pairs) unless the input is the demo"
        )
    return demo_images(SAMPLES.index)


def get_image(wildcards):
    return SAMPLES.loc[wildcards.sample, "path"]


def get_sample_info(wildcards):
    """The sample sheet's optional columns for one sample, as ingest parameters."""
    row = SAMPLES.loc[wildcards.sample]
    channels = row["channels"].split(",") if row["channels"] else None
    pixel_size = float(row["pixel_size"]) if row["pixel_size"] else None
    if pixel_size is None and config["input"].get("demo"):
        pixel_size = config["input"]["demo"].get("pixel_size")
    info = {"axes": row["axes"], "channels": channels, "pixel_size": pixel_size}
    info["scene"] = row["scene"]
    info["source"] = {c: row[c] for c in PLATE_COLUMNS if c in row.index} or None
    return info


def get_norm(wildcards):
    """The statistics a sample is normalized with: its own, or pooled over the experiment."""
    if config["normalize"]["mode"] == "experiment":
        return "results/experiment/norm.json"
    return f"results/{wildcards.sample}/norm.json"


def get_tile_plan(wildcards):
    """The tile plan, through the checkpoint: rules that fan out over shards call this."""
    return checkpoints.tiles.get(sample=wildcards.sample).output[0]


def stage_resources(stage, gpu=False):
    """Cluster resources for a rule: config resources[stage], then resources.default_gpu (GPU
    rules only), then resources.default. GPU rules ask for one GPU (of resources.gpu_model) on
    resources.gpu_partition, the others go to resources.cpu_partition."""
    res = config["resources"]
    base = {**res["default"], **(res.get("default_gpu") or {})} if gpu else res["default"]
    merged = {**base, **(res.get(stage) or {})}
    out = {"mem_mb": merged["mem_mb"], "runtime": merged["runtime"]}
    partition = res["gpu_partition"] if gpu else res["cpu_partition"]
    if partition:
        out["slurm_partition"] = partition
    if gpu:
        out["gpu"] = 1
        if res.get("gpu_model"):
            out["gpu_model"] = res["gpu_model"]
    return out


def stage_threads(stage, gpu=False):
    """Threads for a rule: resources[stage].threads, else the (GPU) default's."""
    res = config["resources"]
    base = {**res["default"], **(res.get("default_gpu") or {})} if gpu else res["default"]
    return {**base, **(res.get(stage) or {})}["threads"]

