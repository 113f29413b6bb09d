"""What the generate rules (and the segment trainer's hookup) need from the config.

Config keys (section `generate`): enabled, pairs, channels, classes, training, masks, output,
examples, and for the segment stage: train_segment (mix synthetic pairs into the segment model's
training) and ratio (share of its training patches drawn from them). The generate rules' params
leave train_segment and ratio out, and the segment trainer's params hold only them, so switching
the mix on or changing the ratio retrains the segmentation model and nothing else.
"""

from __future__ import annotations

from pathlib import Path

MODEL = "models/generate"
PAIRS = "results/synthetic/pairs"
MANIFEST = "results/synthetic/manifest.parquet"
EXAMPLES = "results/synthetic/examples.png"


def enabled(config) -> bool:
    return bool((config.get("generate") or {}).get("enabled"))


def annotated_inputs(config, samples) -> list[str]:
    """The files the annotated pairs come from: a pairs TSV (generate.pairs, else
    segment.pairs), or with the demo its simulated images (truth labels and classes beside)."""
    gen, seg = config["generate"], config.get("segment") or {}
    table = gen.get("pairs") or seg.get("pairs")
    if table:
        return [table]
    if not config["input"].get("demo"):
        raise ValueError(
            "generate needs generate.pairs (or segment.pairs) unless the input is the demo"
        )
    return [f"data/demo/images/{s}.ome.tif" for s in samples]


def annotated_rows(inputs, classes: bool = True) -> list[tuple[str, str, str | None]]:
    """(image, nuclei labels, class table or None) per pair, from `annotated_inputs`."""
    inputs = [str(i) for i in inputs]
    if len(inputs) == 1 and inputs[0].endswith((".tsv", ".txt")):
        from .stage import table_rows  # torch: imported by the job, not the parse

        return table_rows(inputs[0], classes)
    rows = []
    for img in inputs:  # the demo: simulate.write_sample's truth files
        p = Path(img)
        name, truth = p.name.split(".")[0], p.parent.parent / "truth"
        table = truth / f"{name}_objects.csv"
        rows.append((img, str(truth / f"{name}_nuclei.tif"), str(table) if classes else None))
    return rows


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


def segment_params(config) -> dict | None:
    """The segment trainer's synthetic-pair settings, or None when it trains on real pairs only."""
    gen = config.get("generate") or {}
    if not (gen.get("enabled") and gen.get("train_segment")):
        return None
    seg = config.get("segment") or {}
    if not seg.get("train"):
        raise ValueError("generate.train_segment needs segment.train: true (a model to train)")
    if [k for k in seg.get("kinds", ["nuclei"]) if k != "nuclei"]:
        raise ValueError("synthetic pairs hold nuclei only: set segment.kinds to [nuclei]")
    return {"manifest": MANIFEST, "ratio": float(gen.get("ratio", 0.5))}


def segment_inputs(config) -> dict:
    """Named inputs for rule train_segment: the manifest, only when the mix is switched on."""
    return {"synthetic": MANIFEST} if segment_params(config) else {}


def segment_train_params(config) -> dict:
    """Named params for rule train_segment: the mix's settings, only when switched on (so a
    workflow without it keeps train_segment's params, and its model, as they were)."""
    p = segment_params(config)
    return {"synthetic": p} if p else {}


def load_for_stage(inputs, params: dict) -> dict:
    rows = annotated_rows(inputs, classes=params.get("classes", True))
    from .stage import load_annotated_rows

    return load_annotated_rows(rows, params.get("channels"))
