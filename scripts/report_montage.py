"""Rule report_montage (one sample, or a batch of them): the whole image with outlines, and
native-resolution crops (raw, restored, uncertainty) where the objects are and where
uncertainty is highest."""

import pandas as pd

from microdiff.jobs import each, job
from microdiff.report import montage_figure, read_json, save

with job(snakemake.log[0], "report_montage") as log:
    for m in each(snakemake, log):
        inp = m.input
        fig = montage_figure(
            inp.raw,
            inp.segmentation,
            restored=inp.restored[0] if inp.restored else None,
            norm=read_json(inp.norm),
            segments=pd.read_parquet(inp.segments),
            max_px=m.params.report.get("max_px", 512),
        )
        save(fig, m.output.montage)
