"""Rule segment_bright (one sample, or a batch of them): cells on a bright background by
threshold + watershed (non-diffusion)."""

from microdiff.jobs import each, job
from microdiff.segment.bright import bright_stage

with job(snakemake.log[0], "segment_bright") as log:
    for m in each(snakemake, log):
        info = bright_stage(
            m.input.image,
            m.output.image,
            m.output.table,
            m.input.norm,
            m.params.segment,
            inputs={"image": m.input.image},
        )
        log.info("%s", info)
