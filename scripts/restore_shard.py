"""Rule restore_shard: restore one shard of a sample's tiles into a shard store."""

import pandas as pd

from microdiff.diffusion import accel
from microdiff.jobs import job
from microdiff.restore.stage import restore_shard

with job(snakemake.log[0], "restore_shard") as log:
    accel.configure(snakemake.config.get("gpu"))
    n = restore_shard(
        snakemake.input.raw,
        pd.read_parquet(snakemake.input.plan),
        int(snakemake.wildcards.shard),
        snakemake.input.model,
        snakemake.input.norm,
        snakemake.params.restore,
        snakemake.output[0],
        threads=snakemake.threads,
    )
    log.info("restored %d tiles", n)
