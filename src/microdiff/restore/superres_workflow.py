"""Pure helpers the super-resolution rules call (no torch: Snakemake imports this to parse)."""

from __future__ import annotations

from . import workflow


def enabled(config: dict) -> bool:
    return bool(config.get("restore", {}).get("superres", {}).get("enabled", False))


def input_store(config: dict, sample: str) -> str:
    """What SR reads: the restored image when the restore stage is enabled, else the raw one."""
    if config.get("restore", {}).get("enabled", False):
        return f"results/{sample}/restored.ome.zarr"
    return f"results/{sample}/raw.ome.zarr"


def training_params(config: dict) -> dict:
    """The part of `restore.superres` that makes the model: changing it retrains."""
    sr = config["restore"]["superres"]
    keys = ("factor", "psf_sigma", "cond", "pairs", "training")
    return {k: sr.get(k) for k in keys} | {"cond": sr.get("cond", "bicubic")}


def inference_params(config: dict) -> dict:
    """The part of `restore.superres` that only changes inference (never retrains)."""
    return {"inference": config["restore"]["superres"]["inference"]}


def pair_files(config: dict) -> list[str]:
    """The LR/HR sheet and the images it names (changing them retrains)."""
    return workflow.sheet_files(config["restore"]["superres"].get("pairs"), ("low", "high"))


def shard_stores(sample: str, plan_path) -> list[str]:
    return workflow.shard_stores(sample, plan_path, kind="superres")
