"""Rule features (one sample, or a batch of them): the objects table of a sample (nuclei, and
cells when segmented)."""

import pandas as pd

from microdiff import features, provenance
from microdiff.jobs import each, job

with job(snakemake.log[0], "features") as log:
    for m in each(snakemake, log):
        p = m.params.features
        images = list(m.input.images)
        table = features.measure_sample(
            m.input.segmentation,
            images,
            m.sample,
            segments=pd.read_parquet(m.input.segments),
            tile=p.get("tile"),
            neighbor_distance=p.get("neighbor_distance", 2.0),
            texture_levels=p.get("texture_levels", 32),
            norm_json=getattr(m.input, "norm", None) or None,
        )
        log.info("%d objects: %s", len(table), table["kind"].value_counts().to_dict())
        prov = provenance.record("features", p, inputs=[m.input.segmentation, *images])
        provenance.write_table(m.output.objects, table, prov)
