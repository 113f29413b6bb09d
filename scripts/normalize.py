"""Rule normalize: per-channel statistics of one sample."""

from microdiff import normalize
from microdiff.jobs import job

with job(snakemake.log[0], "normalize") as log:
    stats = normalize.compute(
        [snakemake.input[0]], snakemake.params.normalize["percentiles"], snakemake.output[0]
    )
    log.info("channels: %s", stats["channels"])
