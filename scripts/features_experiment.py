"""Rule features_experiment: every sample's objects in one table."""

from microdiff import features, provenance
from microdiff.jobs import job

with job(snakemake.log[0], "features_experiment") as log:
    paths = list(snakemake.input)
    table = features.experiment_table(paths)
    log.info("%d objects from %d samples", len(table), len(paths))
    record = provenance.record("features_experiment", {}, inputs=paths)
    provenance.write_table(snakemake.output[0], table, record)
