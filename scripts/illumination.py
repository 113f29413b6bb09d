"""Rule illumination: flat-field (and dark-field) profiles per channel over the experiment."""

from microdiff import illumination
from microdiff.jobs import job

with job(snakemake.log[0], "illumination") as log:
    prov = illumination.estimate(
        list(snakemake.input), snakemake.params.illumination, snakemake.output[0]
    )
    log.info("profiles from %d images on a %s grid: %s", prov["images"], prov["grid"],
             prov["fits"])  # fmt: skip
