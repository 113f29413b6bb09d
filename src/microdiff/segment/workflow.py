"""Paths the segment rules need, computed from the config (kept here, not in the .smk file)."""

from __future__ import annotations

from ..shipped import SEGMENT, SEGMENT_CELLS

TRAINED = "models/segment_nuclei"


def training(config) -> dict | None:
    """`segment.training` when `segment.train` is on, else None (use the shipped model)."""
    seg = config["segment"]
    return dict(seg.get("training") or {}) if seg.get("train") else None


def training_params(config) -> dict:
    """The part of `segment` that training depends on (so inference settings never retrain)."""
    seg = config["segment"]
    keys = ("kinds", "nuclei_channel", "cytoplasm_channel", "pairs", "training", "seed")
    return {k: seg.get(k) for k in keys}


def image(config, sample: str) -> str:
    """The stage's input: restored when asked for and the restore stage is enabled, else raw."""
    restore = config.get("restore") or {}
    if config["segment"].get("input", "raw") == "restored" and restore.get("enabled"):
        return f"results/{sample}/restored.ome.zarr"
    return f"results/{sample}/raw.ome.zarr"


def model(config) -> str:
    """A file that stands for the model: the trained checkpoint's config or the shipped one
    (`segment.shipped`: the nuclei model, or its one-step distilled student)."""
    if training(config):
        return f"{TRAINED}/config.json"
    return str(SEGMENT[config["segment"].get("shipped", "nuclei")] / "config.json")


def cell_model(config) -> dict:
    """{"cell_model": its config file} when cells are wanted and the model makes none (the
    shipped nuclei models, or a trained one without cells): `segment.cell_model` shipped (the
    shipped cell model) or a checkpoint dir; {} with `none` (the non-diffusion fallback)."""
    seg = config["segment"]
    choice = seg.get("cell_model", "shipped")
    if "cells" not in seg.get("kinds", []) or choice in (None, "none"):
        return {}
    if training(config):  # trained with cells (demo truth, or a cells column): none needed
        return {}
    path = SEGMENT_CELLS if choice == "shipped" else choice
    return {"cell_model": f"{path}/config.json"}


def train_inputs(config, samples) -> list[str]:
    """The pairs table, or (demo) the simulated images whose truth labels train the model."""
    if config["segment"].get("pairs"):
        return [config["segment"]["pairs"]]
    if not config["input"].get("demo"):
        raise ValueError("segment.train needs segment.pairs unless the input is the demo")
    return [f"data/demo/images/{s}.ome.tif" for s in samples]


def shard_stores(plan_path, sample: str) -> list[str]:
    import pandas as pd

    n = int(pd.read_parquet(plan_path, columns=["shard"])["shard"].max()) + 1
    return [f"results/{sample}/segment_shards/{i}.zarr" for i in range(n)]
