"""Rule segment_bright: cells on a bright background by threshold + watershed (non-diffusion)."""

from microdiff.jobs import job
from microdiff.segment.bright import bright_stage

with job(snakemake.log[0], "segment_bright") as log:
    info = bright_stage(
        snakemake.input.image,
        snakemake.output.image,
        snakemake.output.table,
        snakemake.input.norm,
        snakemake.params.segment,
        inputs={"image": snakemake.input.image},
    )
    log.info("%s", info)
