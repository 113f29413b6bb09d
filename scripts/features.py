"""Rule features: the objects table of one sample (nuclei, and cells when segmented)."""

import pandas as pd

from microdiff import features, provenance
from microdiff.jobs import job

with job(snakemake.log[0], "features") as log:
    p = snakemake.params.features
    tile = p.get("tile")
    table = features.measure_sample(
        snakemake.input.segmentation,
        list(snakemake.input.images),
        snakemake.wildcards.sample,
        segments=pd.read_parquet(snakemake.input.segments),
        tile=tile,
        neighbor_distance=p.get("neighbor_distance", 2.0),
        texture_levels=p.get("texture_levels", 32),
        norm_json=getattr(snakemake.input, "norm", None) or None,
    )
    log.info("%d objects: %s", len(table), table["kind"].value_counts().to_dict())
    inputs = [snakemake.input.segmentation, *snakemake.input.images]
    features.write_objects(
        snakemake.output[0], table, provenance.record("features", p, inputs=inputs)
    )
