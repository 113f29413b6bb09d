"""Rule tiles (checkpoint): the tile plan of a sample's image."""

from microdiff import provenance, tiling
from microdiff.jobs import job

with job(snakemake.log[0], "tiles") as log:
    params = snakemake.params.tiles
    plan = tiling.plan_store(snakemake.input[0], **params)
    prov = provenance.record("tiles", params, inputs=[snakemake.input[0]])
    tiling.write_plan(plan, snakemake.output[0], prov)
    log.info("%d tiles in %d shards", len(plan), tiling.n_shards(plan))
