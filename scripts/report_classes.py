"""Rule report_classes: feature distributions by class, class counts, classifier metrics."""

import pandas as pd

from microdiff import report
from microdiff.jobs import job

with job(snakemake.log[0], "report_classes"):
    inp, out = snakemake.input, snakemake.output
    objects = pd.read_parquet(inp.objects)
    classes = pd.concat([pd.read_parquet(p) for p in inp.classes], ignore_index=True)
    n = snakemake.params.report.get("features", 6)
    report.save(report.feature_figure(objects, classes, n), out.features)
    counts = pd.read_csv(inp.counts, sep="\t", dtype={"class": str})
    report.save(report.class_counts_figure(counts), out.counts)
    # the note says why the confusion matrix counts fewer objects than the class counts
    metrics = report.metrics_figure(report.read_json(inp.metrics), n_classified=len(classes))
    report.save(metrics, out.metrics)
