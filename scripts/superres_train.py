"""Rule train_superres: the experiment's super-resolution model (conditional diffusion)."""

from microdiff.jobs import job
from microdiff.restore.superres_stage import train_superres

with job(snakemake.log[0], "train_superres") as log:
    cfg = train_superres(
        list(snakemake.input.images),
        list(snakemake.input.norm),
        snakemake.params.superres,
        snakemake.output[0],
        threads=snakemake.threads,
    )
    log.info("model %s: x%d, %s, final loss %s", cfg["params_hash"], cfg["factor"], cfg["mode"],
             cfg["final_loss"])  # fmt: skip
