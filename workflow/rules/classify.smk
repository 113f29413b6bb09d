# The classify stage: one classifier over the whole experiment (supervised from a label table,
# the diffusion classifier, or unsupervised clustering), per-sample classes and summaries.
CLASSIFY = config["classify"]
CLASSIFY_LABELS = (
    [CLASSIFY["labels"]] if CLASSIFY["mode"] != "unsupervised" and CLASSIFY.get("labels") else []
)
CLASSIFY_DIFFUSION = CLASSIFY["mode"] == "diffusion"
CLASSIFY_MODEL = "models/classify/diffusion"
# what training reads: changing any other key (noise levels, views, join, trials, prior) reruns
# classify only
CLASSIFY_TRAINING = {
    "method", "crop", "pool", "width", "depth", "steps", "batch", "lr", "holdout", "max_train"
}
CLASSIFY_EXPERIMENT = [
    "results/experiment/classes_summary.tsv",
    "results/experiment/class_counts.tsv",
    "results/experiment/classifier_metrics.json",
]

if config["input"].get("demo"):

    # The demo's label table: the simulator's true nuclear centres and classes, as points
    # (the segmented nuclei have their own ids, so points, not ids, carry the labels).
    rule demo_labels:
        input:
            "data/demo/samples.tsv",
        output:
            "data/demo/labels.tsv",
        log:
            "logs/demo_labels/demo.log",
        benchmark:
            "benchmarks/demo_labels/demo.tsv"
        threads: 1
        resources:
            **stage_resources("demo_labels"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/classify_demo_labels.py"


# Training of the classify stage's diffusion model on object crops (GPU-tagged): the
# self-supervised representation (every object) or the class-conditional model (labelled ones).
rule train_classifier:
    input:
        objects="results/experiment/objects.parquet",
        labels=CLASSIFY_LABELS,
        segmentations=expand(
            "results/{sample}/segmentation.ome.zarr", sample=SAMPLES.index
        ),
        images=expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
        norms=lambda wc: [get_norm(s) for s in SAMPLES.itertuples()],
    output:
        directory(CLASSIFY_MODEL),
    params:
        samples=list(SAMPLES.index),
        classify={
            **{k: CLASSIFY.get(k) for k in ("labels", "kind", "seed")},
            "diffusion": {
                k: v for k, v in CLASSIFY["diffusion"].items() if k in CLASSIFY_TRAINING
            },
        },
    log:
        "logs/train_classifier/experiment.log",
    benchmark:
        "benchmarks/train_classifier/experiment.tsv"
    threads: stage_threads("train_classifier")
    resources:
        **stage_resources("train_classifier", gpu=True),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/classify_train.py"


rule classify:
    input:
        objects="results/experiment/objects.parquet",
        labels=CLASSIFY_LABELS,
        segmentations=expand(
            "results/{sample}/segmentation.ome.zarr",
            sample=SAMPLES.index if CLASSIFY_LABELS else [],
        ),
        model=[CLASSIFY_MODEL] if CLASSIFY_DIFFUSION else [],
        images=expand(
            "results/{sample}/raw.ome.zarr", sample=SAMPLES.index if CLASSIFY_DIFFUSION else []
        ),
        norms=lambda wc: [get_norm(s) for s in SAMPLES.itertuples()] if CLASSIFY_DIFFUSION else [],
    output:
        classes=expand("results/{sample}/classes.parquet", sample=SAMPLES.index),
        summary="results/experiment/classes_summary.tsv",
        counts="results/experiment/class_counts.tsv",
        metrics="results/experiment/classifier_metrics.json",
    params:
        samples=list(SAMPLES.index),
        classify=CLASSIFY,
    log:
        "logs/classify/experiment.log",
    benchmark:
        "benchmarks/classify/experiment.tsv"
    threads: stage_threads("classify")
    resources:
        **stage_resources("classify", gpu=CLASSIFY_DIFFUSION),
    conda:
        "../../envs/torch.yaml" if CLASSIFY_DIFFUSION else "../../envs/image.yaml"
    script:
        "../../scripts/classify.py"


if SEGMENTATION_MADE:
    FINAL_TARGETS.extend(CLASSIFY_EXPERIMENT)


include: "report.smk"
