"""What the restore rules take from the config: the settings that retrain the model, the ones
that only change inference, and the training pairs' files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..shipped import RESTORE as DEFAULT_MODEL


def default_hash(default=DEFAULT_MODEL) -> str | None:
    """The shipped default model's weights hash (so replacing it retrains), or None."""
    f = Path(default) / "config.json"
    return json.loads(f.read_text())["params_hash"] if f.is_file() else None


def training_params(restore: dict) -> dict:
    """The part of the restore config that makes the model: changing it retrains."""
    return {
        "train": restore.get("train", True),
        "pairs": restore.get("pairs"),
        "training": restore["training"],
        "default": default_hash(),
    }


def inference_params(restore: dict) -> dict:
    """The part of the restore config that only changes inference (never retrains).

    `restore.superres` is its own stage (rules train_superres, superres_*), so it is in neither.
    """
    return {"inference": restore["inference"]}


def sheet_files(sheet, columns) -> list[str]:
    """A pairs sheet and the images its `columns` name (training inputs: changing them retrains)."""
    if not sheet:
        return []
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    base = Path(sheet).parent
    return [sheet] + [str(base / p) for col in columns for p in table[col]]


def pair_files(restore: dict) -> list[str]:
    return sheet_files(restore.get("pairs"), ("noisy", "clean"))
