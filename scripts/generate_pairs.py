"""Rule generate_pairs: synthetic image/mask pairs (OME-Zarr) and their manifest (parquet)."""

from microdiff.diffusion import accel, set_threads
from microdiff.generate import generate_pairs, load_inputs
from microdiff.jobs import job

with job(snakemake.log[0], "generate_pairs") as log:
    set_threads(snakemake.threads)
    accel.configure(snakemake.config.get("gpu"))
    params = snakemake.params.generate
    annotated = load_inputs(list(snakemake.input.annotated), params)
    table = generate_pairs(
        snakemake.input.model,
        annotated,
        snakemake.output.pairs,
        snakemake.output.manifest,
        {**params["output"], "masks": params["masks"]},
        inputs={"model": snakemake.input.model, "annotated": list(snakemake.input.annotated)},
    )
    log.info("%d pairs, %d objects, contrast %.2f", len(table), table["n_objects"].sum(),
             table["contrast"].mean())  # fmt: skip
