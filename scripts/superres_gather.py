"""Rule superres_gather: shard stores -> results/{sample}/superres.ome.zarr (NGFF, finer grid)."""

import pandas as pd

from microdiff.jobs import job
from microdiff.restore.superres_stage import gather_superres

with job(snakemake.log[0], "superres_gather") as log:
    prov = gather_superres(
        snakemake.input.image,
        pd.read_parquet(snakemake.input.plan),
        list(snakemake.input.shards),
        snakemake.input.model,
        snakemake.params.superres,
        snakemake.output[0],
    )
    log.info("x%d: %s (%s); %d network evaluations per output pixel", prov["factor"],
             prov["method"], prov["model_mode"], prov["nfe"])  # fmt: skip
