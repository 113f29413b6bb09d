"""Rule train_segment: train the segmentation model from the named pairs or the demo's truth."""

from pathlib import Path

from microdiff.jobs import job
from microdiff.segment.train import train_from_config

with job(snakemake.log[0], "train_segment") as log:
    synthetic = snakemake.params.get("synthetic")  # the generate stage's pairs, mixed in
    pairs = None
    if synthetic:
        from microdiff.generate.stage import read_pairs

        pairs = read_pairs(synthetic["manifest"])
    info = train_from_config(
        snakemake.params.segment,
        list(snakemake.input.images),
        Path(snakemake.output[0]).parent,
        threads=snakemake.threads,
        synthetic=synthetic,
        synthetic_pairs=pairs,
    )
    log.info("%s", info)
