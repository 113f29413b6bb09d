"""Rule train_restore: the experiment's restore model (noise model + diffusion denoiser).

Without training and with the shipped default, the model is the default's files with this
experiment's noise model (`restore.pretrained`, no torch); otherwise it is trained or loaded and
saved with torch."""

from microdiff.jobs import job
from microdiff.restore import pretrained

with job(snakemake.log[0], "train_restore") as log:
    raw, norm, params = (
        list(snakemake.input.raw),
        list(snakemake.input.norm),
        snakemake.params.restore,
    )
    out = snakemake.output[0]
    if pretrained.copies(params, pretrained.shipped.RESTORE):
        cfg = pretrained.restore_as_is(raw, norm, params, out)
    else:
        from microdiff.restore.train import train_restore

        cfg = train_restore(raw, norm, params, out, threads=snakemake.threads)
    log.info("model %s: %s, %s", cfg["params_hash"], cfg["mode"], cfg["init"])
