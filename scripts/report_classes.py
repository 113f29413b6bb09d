"""Rule report_classes: feature distributions by class, class counts, classifier metrics and
example crops per class (or cluster)."""

import pandas as pd
import zarr

from microdiff.classify.crops import experiment_crops
from microdiff.io.ngff import level0
from microdiff.jobs import job
from microdiff.report import (
    class_counts_figure,
    examples_figure,
    feature_figure,
    metrics_figure,
    pick_examples,
    pixel_size,
    read_json,
    save,
)

with job(snakemake.log[0], "report_classes"):
    inp, out = snakemake.input, snakemake.output
    objects = pd.read_parquet(inp.objects)
    classes = pd.concat([pd.read_parquet(p) for p in inp.classes], ignore_index=True)
    n = snakemake.params.report.get("features", 6)
    save(feature_figure(objects, classes, n), out.features)
    counts = pd.read_csv(inp.counts, sep="\t", dtype={"class": str})
    save(class_counts_figure(counts), out.counts)
    # the note says why the confusion matrix counts fewer objects than the class counts
    metrics = metrics_figure(read_json(inp.metrics), n_classified=len(classes))
    save(metrics, out.metrics)
    size = int(snakemake.params.report.get("example_px", 48))
    images = dict(zip(snakemake.params.samples, inp.images))
    shapes = {s: level0(zarr.open_group(str(p), mode="r")).shape for s, p in images.items()}
    n_examples = snakemake.params.report.get("examples", 8)
    picks = pick_examples(objects, classes, n_examples, shapes=shapes, size=size)
    norms = dict(zip(snakemake.params.samples, inp.norms))
    crops = {name: experiment_crops(rows.reset_index(drop=True), images, norms, size)
             for name, rows in picks.items()}  # fmt: skip
    n = classes["class"].astype(str).value_counts().to_dict()
    px = pixel_size(inp.images[0]) if inp.images else None
    save(examples_figure(crops, n, px), out.examples)
