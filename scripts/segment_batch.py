"""Rule segment_<batch>: every shard and the gather of each sample of a batch, in one process
(the models are loaded once for the batch: `diffusion.load_shared`)."""

from pathlib import Path

import pandas as pd

from microdiff.diffusion import accel, set_threads
from microdiff.jobs import each, job
from microdiff.segment.stage import segment_image

with job(snakemake.log[0], "segment_batch") as log:
    set_threads(snakemake.threads)
    accel.configure(snakemake.config.get("gpu"))
    model = Path(snakemake.input.model).parent
    cells = snakemake.input.get("cell_model")  # beside a nuclei-only model (segment.cell_model)
    cell_model = Path(cells).parent if cells else None
    for m in each(snakemake, log):
        p = m.params.segment
        info = segment_image(
            m.input.image,
            m.output.image,
            m.output.table,
            pd.read_parquet(m.input.plan),
            model,
            m.input.norm,
            p,
            cell_model=cell_model,
            batch_size=p.get("batch_size", 4),
        )
        log.info("%s", info)
