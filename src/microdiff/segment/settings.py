"""What the segment rules take from the config (the settings that retrain the model)."""

from __future__ import annotations


def training(config) -> dict | None:
    """`segment.training` when `segment.train` is on, else None (use the shipped model)."""
    seg = config["segment"]
    return dict(seg.get("training") or {}) if seg.get("train") else None


def training_params(config) -> dict:
    """The part of `segment` that training depends on (so inference settings never retrain)."""
    seg = config["segment"]
    keys = ("kinds", "nuclei_channel", "cytoplasm_channel", "pairs", "training", "seed")
    return {k: seg.get(k) for k in keys}
