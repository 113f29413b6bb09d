"""Rule restore_gather: shard stores -> results/{sample}/restored.ome.zarr (NGFF)."""

import pandas as pd

from microdiff.jobs import job
from microdiff.restore.stage import gather_restore

with job(snakemake.log[0], "restore_gather") as log:
    prov = gather_restore(
        snakemake.input.raw,
        pd.read_parquet(snakemake.input.plan),
        list(snakemake.input.shards),
        snakemake.input.model,
        snakemake.params.restore,
        snakemake.output[0],
    )
    log.info(
        "method: %s (%s); %d network evaluations per pixel",
        prov["method"],
        prov["model_mode"],
        prov["nfe"],
    )
