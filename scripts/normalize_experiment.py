"""Rule normalize_experiment: statistics pooled over every sample."""

from microdiff import normalize
from microdiff.jobs import job

with job(snakemake.log[0], "normalize_experiment") as log:
    stats = normalize.merge_files(
        snakemake.input, snakemake.params.normalize["percentiles"], snakemake.output[0]
    )
    log.info("channels: %s", stats["channels"])
