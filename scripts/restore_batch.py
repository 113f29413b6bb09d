"""Rule restore_<batch>: every shard and the gather of each sample of a batch, in one process."""

import pandas as pd

from microdiff.diffusion import accel
from microdiff.jobs import each, job
from microdiff.restore.stage import restore_image

with job(snakemake.log[0], "restore_batch") as log:
    accel.configure(snakemake.config.get("gpu"))
    for m in each(snakemake, log):
        prov = restore_image(
            m.input.raw,
            m.input.norm,
            snakemake.input.model,
            m.output.restored,
            m.params.restore,
            plan=pd.read_parquet(m.input.plan),
            threads=snakemake.threads,
            progress=False,
        )
        log.info("method: %s (%s); %d network evaluations per pixel", prov["method"],
                 prov["model_mode"], prov["nfe"])  # fmt: skip
