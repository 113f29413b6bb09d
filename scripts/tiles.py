"""Rule tiles (one sample's checkpoint, or a batch's plans): the tile plan of an image."""

from microdiff import provenance, tiling
from microdiff.jobs import each, job

with job(snakemake.log[0], "tiles") as log:
    for m in each(snakemake, log):
        params = m.params.tiles
        plan = tiling.plan_store(m.input.raw, **params)
        prov = provenance.record("tiles", params, inputs=[m.input.raw])
        provenance.write_table(m.output.plan, plan, prov)
        log.info("%d tiles in %d shards", len(plan), tiling.n_shards(plan))
