"""Rule superres_<batch>: every shard and the gather of each sample of a batch, in one process."""

import pandas as pd

from microdiff.diffusion import accel
from microdiff.jobs import each, job
from microdiff.restore.superres_stage import superres_image

with job(snakemake.log[0], "superres_batch") as log:
    accel.configure(snakemake.config.get("gpu"))
    for m in each(snakemake, log):
        prov = superres_image(
            m.input.image,
            m.input.norm,
            snakemake.input.model,
            m.output.superres,
            m.params.superres,
            plan=pd.read_parquet(m.input.plan),
            threads=snakemake.threads,
        )
        log.info("x%d: %s (%s); %d network evaluations per output pixel", prov["factor"],
                 prov["method"], prov["model_mode"], prov["nfe"])  # fmt: skip
