"""Rule train_classifier: the diffusion model of the classify stage on object crops (the
self-supervised representation, or the class-conditional lowest-error model)."""

import pandas as pd

from microdiff import classify
from microdiff.classify import diffusion_method
from microdiff.jobs import job

with job(snakemake.log[0], "train_classifier") as log:
    p = snakemake.params.classify
    samples = snakemake.params.samples
    objects = pd.read_parquet(snakemake.input.objects)
    kind = p.get("kind", "nucleus")
    table = classify.classification_table(objects, kind)
    segs = dict(zip(samples, snakemake.input.segmentations))
    labels, unmatched = classify.stage_labels(
        p.get("labels"), segs, kind, classify.spatial_ndim(objects)
    )
    if labels is None and p["diffusion"].get("method", "representation") != "representation":
        raise ValueError("classify.diffusion.method lowest_error needs classify.labels")
    if labels is None:
        log.info("no labels: the representation trains on every object, its embeddings are "
                 "clustered")  # fmt: skip
    else:
        log.info("%d labelled objects, %d label rows unmatched", len(labels), len(unmatched))
    result = diffusion_method(p["diffusion"]).train_experiment(
        table,
        labels,
        dict(zip(samples, snakemake.input.images)),
        dict(zip(samples, snakemake.input.norms)),
        dict(p["diffusion"]),
        snakemake.output[0],
        seed=int(p.get("seed", 0)),
        threads=snakemake.threads,
    )
    log.info("final loss %.4f after %d steps", result.losses[-1], result.step)
