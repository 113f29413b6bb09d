"""Rule segment_gather: stitched probability/uncertainty, NGFF labels and the object table."""

import pandas as pd

from microdiff.jobs import job
from microdiff.segment.stage import segment_gather

with job(snakemake.log[0], "segment_gather") as log:
    info = segment_gather(
        snakemake.input.image,
        pd.read_parquet(snakemake.input.plan),
        list(snakemake.input.shards),
        snakemake.output.image,
        snakemake.output.table,
        snakemake.input.norm,
        snakemake.params.segment,
        inputs={"image": snakemake.input.image, "shards": len(snakemake.input.shards)},
    )
    log.info("%s", info)
