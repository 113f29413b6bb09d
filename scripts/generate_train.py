"""Rule train_generate: the mask-conditioned diffusion image model on the annotated pairs."""

from microdiff.generate import load_inputs, train_stage
from microdiff.jobs import job

with job(snakemake.log[0], "train_generate") as log:
    params = snakemake.params.generate
    annotated = load_inputs(list(snakemake.input), params)
    res = train_stage(annotated, snakemake.output[0], params["training"], threads=snakemake.threads)
    log.info("%d pairs, %d steps, final loss %.4f", len(annotated["images"]), res.step,
             sum(res.losses[-20:]) / max(len(res.losses[-20:]), 1))  # fmt: skip
