"""Rule normalize (one sample, or a batch of them): per-channel statistics."""

from microdiff import normalize
from microdiff.jobs import each, job

with job(snakemake.log[0], "normalize") as log:
    profiles = snakemake.input.illumination  # flat-field profiles, when the stage is enabled
    profiles = [profiles] if isinstance(profiles, str) else list(profiles)
    for m in each(snakemake, log):
        stats = normalize.compute(
            [m.input.raw],
            m.params.normalize["percentiles"],
            m.output.norm,
            illumination=profiles[0] if profiles else None,
        )
        log.info("channels: %s", stats["channels"])
