"""Rule plate_output: the per-field images and labels laid out as an NGFF plate."""

import pandas as pd

from microdiff.io import plate
from microdiff.jobs import job

with job(snakemake.log[0], "plate_output") as log:
    table = pd.DataFrame(snakemake.params.fields)
    table["image"] = list(snakemake.input.images)
    table["labels"] = list(snakemake.input.labels) or None
    name = str(table["plate"].iloc[0])
    plate.write_plate(snakemake.output[0], table, name=name)
    log.info("plate %s: %d fields in %d wells", name, len(table), table["well"].nunique())
