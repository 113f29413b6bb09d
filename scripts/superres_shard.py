"""Rule superres_shard: super-resolve one shard of a sample's tiles into a shard store."""

import pandas as pd

from microdiff.diffusion import accel
from microdiff.jobs import job
from microdiff.restore.superres_stage import superres_shard

with job(snakemake.log[0], "superres_shard") as log:
    accel.configure(snakemake.config.get("gpu"))
    n = superres_shard(
        snakemake.input.image,
        pd.read_parquet(snakemake.input.plan),
        int(snakemake.wildcards.shard),
        snakemake.input.model,
        snakemake.input.norm,
        snakemake.params.superres,
        snakemake.output[0],
        threads=snakemake.threads,
    )
    log.info("super-resolved %d tiles", n)
