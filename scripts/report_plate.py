"""Rule report_plate: the plate heat map (objects and class fractions per well)."""

import pandas as pd

from microdiff import plate_figure
from microdiff.jobs import job

with job(snakemake.log[0], "report_plate"):
    wells = pd.read_csv(snakemake.input[0], sep="\t", dtype={"row": str, "column": str})
    plate_figure.save(plate_figure.heatmap_figure(wells), snakemake.output[0])
