"""Rule segment_shard: K-sample diffusion segmentation of one shard's tiles."""

from pathlib import Path

import pandas as pd

from microdiff.diffusion import accel, set_threads
from microdiff.jobs import job
from microdiff.segment.stage import segment_shard

# a cell model beside a nuclei-only model (segment.cell_model; absent: none wanted)
cells = snakemake.input.get("cell_model")
cell_model = Path(cells).parent if cells else None

with job(snakemake.log[0], "segment_shard") as log:
    set_threads(snakemake.threads)
    accel.configure(snakemake.config.get("gpu"))
    info = segment_shard(
        snakemake.input.image,
        pd.read_parquet(snakemake.input.plan),
        int(snakemake.wildcards.shard),
        snakemake.output[0],
        Path(snakemake.input.model).parent,
        snakemake.input.norm,
        snakemake.params.segment,
        batch_size=snakemake.params.segment.get("batch_size", 4),
        cell_model=cell_model,
    )
    log.info("%s", info)
