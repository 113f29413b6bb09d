"""Rule classify: one classifier over the experiment; classes per sample and summaries."""

import json

import pandas as pd

from microdiff import classify, provenance
from microdiff.atomic import atomic_output
from microdiff.classify import diffusion_method
from microdiff.jobs import job

with job(snakemake.log[0], "classify") as log:
    p = snakemake.params.classify
    samples = snakemake.params.samples
    inp = snakemake.input
    objects = pd.read_parquet(inp.objects)
    kind = p.get("kind", "nucleus")
    labels, unmatched = classify.stage_labels(
        inp.labels[0] if inp.labels else None,
        dict(zip(samples, inp.segmentations)),
        kind,
        classify.spatial_ndim(objects),
    )
    if labels is not None:
        reasons = unmatched["reason"].value_counts().to_dict()
        log.info("%d labelled objects; unmatched label rows: %s", len(labels), reasons)
    if p["mode"] == "diffusion":
        table = classify.classification_table(objects, kind)
        classes, info = diffusion_method(p["diffusion"]).classify_experiment(
            table,
            labels,
            dict(zip(samples, inp.images)),
            dict(zip(samples, inp.norms)),
            inp.model[0],
            {**p["diffusion"], "unsupervised": p.get("unsupervised") or {}},
            seed=int(p.get("seed", 0)),
            threads=snakemake.threads,
        )
    else:
        classes, info, _ = classify.classify_experiment(objects, p, labels)
    if labels is not None:
        info["unmatched_labels"] = unmatched["reason"].value_counts().to_dict()
    log.info("%s: %s", p["mode"], {k: info.get(k) for k in ("accuracy", "f1_macro", "k", "cv")})
    if info.get("note"):
        log.warning("%s", info["note"])
    record = provenance.record("classify", p, inputs=[inp.objects, *inp.labels], **info)
    classes["class"] = classes["class"].astype(str)
    out = dict(zip(samples, snakemake.output.classes))
    for sample, path in out.items():
        rows = classes[classes["sample"] == sample].reset_index(drop=True)
        classify.write_classes(path, rows, record)
    with atomic_output(snakemake.output.summary) as tmp:
        classify.experiment_summary(classes).to_csv(tmp, sep="\t", index=False)
    with atomic_output(snakemake.output.counts) as tmp:
        classify.summarize(classes).to_csv(tmp, sep="\t", index=False)
    with atomic_output(snakemake.output.metrics) as tmp:
        tmp.write_text(json.dumps(info, indent=1, default=str) + "\n")
