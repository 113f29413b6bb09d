"""Rule train_segment: train the segmentation model from the named pairs or the demo's truth."""

from pathlib import Path

from microdiff.jobs import job
from microdiff.segment.train import train_from_config

with job(snakemake.log[0], "train_segment") as log:
    info = train_from_config(
        snakemake.params.segment,
        list(snakemake.input.images),
        Path(snakemake.output[0]).parent,
        threads=snakemake.threads,
        synthetic=snakemake.params.get("synthetic"),
    )
    log.info("%s", info)
