"""Rule normalize: per-channel statistics of one sample."""

from microdiff import normalize
from microdiff.jobs import job

with job(snakemake.log[0], "normalize") as log:
    profiles = snakemake.input.illumination  # flat-field profiles, when the stage is enabled
    profiles = [profiles] if isinstance(profiles, str) else list(profiles)
    stats = normalize.compute(
        [snakemake.input[0]],
        snakemake.params.normalize["percentiles"],
        snakemake.output[0],
        illumination=profiles[0] if profiles else None,
    )
    log.info("channels: %s", stats["channels"])
