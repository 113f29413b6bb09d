"""Rule report_plate: the plate heat map (objects and class fractions per well)."""

import pandas as pd

from microdiff import report
from microdiff.jobs import job
from microdiff.report.plate import heatmap_figure

with job(snakemake.log[0], "report_plate"):
    wells = pd.read_csv(snakemake.input[0], sep="\t", dtype={"row": str, "column": str})
    report.save(heatmap_figure(wells), snakemake.output[0])
