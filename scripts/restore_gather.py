"""Rule restore_gather: shard stores -> results/{sample}/restored.ome.zarr (NGFF)."""

from microdiff.jobs import job
from microdiff.restore import gather_restore

with job(snakemake.log[0], "restore_gather") as log:
    prov = gather_restore(
        snakemake.input.raw,
        snakemake.input.plan,
        list(snakemake.input.shards),
        snakemake.input.model,
        snakemake.params.restore,
        snakemake.output[0],
    )
    log.info(
        "method: %s (%s); %d network evaluations per pixel",
        prov["method"],
        prov["model_mode"],
        prov["nfe"],
    )
