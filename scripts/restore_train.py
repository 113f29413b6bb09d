"""Rule train_restore: the experiment's restore model (noise model + diffusion denoiser)."""

from microdiff.jobs import job
from microdiff.restore.train import train_restore

with job(snakemake.log[0], "train_restore") as log:
    cfg = train_restore(
        list(snakemake.input.raw),
        list(snakemake.input.norm),
        snakemake.params.restore,
        snakemake.output[0],
        threads=snakemake.threads,
    )
    log.info("model %s: %s, %s", cfg["params_hash"], cfg["mode"], cfg["init"])
