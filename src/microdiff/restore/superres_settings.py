"""Pure helpers the super-resolution rules call (no torch: Snakemake imports this to parse)."""

from __future__ import annotations

from . import settings


def enabled(config: dict) -> bool:
    return bool(config.get("restore", {}).get("superres", {}).get("enabled", False))


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
    return settings.sheet_files(config["restore"]["superres"].get("pairs"), ("low", "high"))
