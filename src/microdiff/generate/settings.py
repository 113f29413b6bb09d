"""What the generate rules (and the segment trainer's hookup) need from the config.

Config keys (section `generate`): enabled, pairs, channels, classes, training, masks, output,
examples, and for the segment stage: train_segment (mix synthetic pairs into the segment model's
training) and ratio (share of its training patches drawn from them). The generate rules' params
leave train_segment and ratio out, and the segment trainer's params hold only them, so switching
the mix on or changing the ratio retrains the segmentation model and nothing else.
"""

from __future__ import annotations


def enabled(config) -> bool:
    return bool((config.get("generate") or {}).get("enabled"))


def channels(config) -> list:
    """The image channels generated: generate.channels, else the segment model's nuclei channel."""
    chans = config["generate"].get("channels")
    if chans is None:
        chans = [(config.get("segment") or {}).get("nuclei_channel", 0)]
    return list(chans)


def training_params(config) -> dict:
    """What the generator's training depends on (rule train_generate)."""
    gen, seg = config["generate"], config.get("segment") or {}
    return {
        "pairs": gen.get("pairs") or seg.get("pairs"),
        "channels": channels(config),
        "classes": bool(gen.get("classes", True)),
        "training": dict(gen.get("training") or {}),
    }


def output_params(config) -> dict:
    """What the synthetic pairs depend on beyond the model (rule generate_pairs)."""
    gen = config["generate"]
    return {**training_params(config), "masks": dict(gen.get("masks") or {}),
            "output": dict(gen.get("output") or {})}  # fmt: skip


def examples_params(config) -> dict:
    return {**output_params(config), "examples": int(config["generate"].get("examples", 3))}


def segment_ratio(config) -> float | None:
    """The share of the segment trainer's patches drawn from the synthetic pairs, or None when
    it trains on real pairs only (generate.train_segment off)."""
    gen = config.get("generate") or {}
    if not (gen.get("enabled") and gen.get("train_segment")):
        return None
    seg = config.get("segment") or {}
    if not seg.get("train"):
        raise ValueError("generate.train_segment needs segment.train: true (a model to train)")
    if [k for k in seg.get("kinds", ["nuclei"]) if k != "nuclei"]:
        raise ValueError("synthetic pairs hold nuclei only: set segment.kinds to [nuclei]")
    return float(gen.get("ratio", 0.5))
