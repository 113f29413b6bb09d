"""Rule generate_examples: whole-image samples of the generate model for the report."""

from microdiff.diffusion import accel, set_threads
from microdiff.generate import examples, load_inputs
from microdiff.jobs import job

with job(snakemake.log[0], "generate_examples") as log:
    set_threads(snakemake.threads)
    accel.configure(snakemake.config.get("gpu"))
    params = snakemake.params.generate
    annotated = load_inputs(list(snakemake.input.annotated), params)
    out = examples(
        snakemake.input.model,
        annotated,
        snakemake.output[0],
        {**params["output"], "examples": params["examples"]},
    )
    log.info("%s", out)
