"""Rule plate_summary: per-well and per-plate object counts and class fractions."""

import pandas as pd

from microdiff import experiment
from microdiff.io import plate
from microdiff.jobs import job

with job(snakemake.log[0], "plate_summary") as log:
    fields = pd.DataFrame(snakemake.params.fields)
    objects = pd.read_parquet(snakemake.input.objects, columns=["sample", "kind"])
    counts = pd.read_csv(snakemake.input.counts, sep="\t", dtype={"class": str})
    wells, whole = plate.summaries(fields, objects, counts)
    log.info("per well:\n%s", wells.to_string(index=False))
    experiment.write_tsv(wells, snakemake.output.wells)
    experiment.write_tsv(whole, snakemake.output.plate)
