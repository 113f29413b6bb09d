"""Rule demo_labels: the demo's point label table from the simulator's truth."""

from pathlib import Path

import pandas as pd

from microdiff.atomic import atomic_output
from microdiff.classify import demo_label_table
from microdiff.jobs import job

with job(snakemake.log[0], "demo_labels") as log:
    sheet = Path(snakemake.input[0])
    samples = pd.read_csv(sheet, sep="\t")["sample"].astype(str).tolist()
    table = demo_label_table(sheet.parent, samples)
    log.info("%d points: %s", len(table), table["class"].value_counts().to_dict())
    with atomic_output(snakemake.output[0]) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
