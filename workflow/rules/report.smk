# Figures of the experiment report (`snakemake --report report.html`): per sample a montage,
# normalization and noise, feature distributions by class, class counts, classifier metrics and
# the runtime of each rule. Included from classify.smk; the figures are final targets, so the
# report holds them for any finished run.
from types import SimpleNamespace

REPORT_RESTORED = bool(config.get("restore", {}).get("enabled"))


report: "../report/workflow.rst"


rule report_montage:
    input:
        raw="results/{sample}/raw.ome.zarr",
        segmentation="results/{sample}/segmentation.ome.zarr",
        segments="results/{sample}/segments.parquet",
        restored=["results/{sample}/restored.ome.zarr"] if REPORT_RESTORED else [],
        norm=get_norm,
    output:
        montage=report(
            "results/report/{sample}_montage.png",
            caption="../report/montage.rst",
            category="Samples",
            labels={"sample": "{sample}", "figure": "montage"},
        ),
    params:
        report=config["report"],
    log:
        "logs/report_montage/{sample}.log",
    benchmark:
        "benchmarks/report_montage/{sample}.tsv"
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_montage.py"


for batch, members in BATCHES.items():
    _rows = per_sample(
        members,
        input={
            "raw": "results/{sample}/raw.ome.zarr",
            "segmentation": "results/{sample}/segmentation.ome.zarr",
            "segments": "results/{sample}/segments.parquet",
            "restored": ["results/{sample}/restored.ome.zarr"] if REPORT_RESTORED else [],
            "norm": get_norm,
        },
        output={"montage": "results/report/{sample}_montage.png"},
    )

    rule:
        name:
            f"report_montage_{batch}"
        input:
            raw=flat(_rows, "input", "raw"),
            segmentation=flat(_rows, "input", "segmentation"),
            segments=flat(_rows, "input", "segments"),
            restored=flat(_rows, "input", "restored"),
            norm=flat(_rows, "input", "norm"),
        output:
            montage=[
                report(r["output"]["montage"], caption="../report/montage.rst",
                       category="Samples", labels={"sample": r["sample"], "figure": "montage"})
                for r in _rows
            ],  # fmt: skip
        params:
            report=config["report"],
            members=_rows,
        log:
            f"logs/report_montage_batch/{batch}.log",
        benchmark:
            f"benchmarks/report_montage_batch/{batch}.tsv"
        threads: 1
        resources:
            **stage_resources("report"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/report_montage.py"


NOISE_CURVES = "results/experiment/noise_curves.parquet"


rule report_normalization:
    input:
        raw=expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
        norms=expand("results/{sample}/norm.json", sample=SAMPLES.index),
    output:
        figure=report(
            "results/report/normalization.png",
            caption="../report/normalization.rst",
            category="Normalization and noise",
            labels={"figure": "normalization and noise"},
        ),
        # the curves of the figure, read by report_qc (measured once)
        curves=NOISE_CURVES,
    params:
        samples=list(SAMPLES.index),
        report=config["report"],
    log:
        "logs/report_normalization/experiment.log",
    benchmark:
        "benchmarks/report_normalization/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_normalization.py"


rule report_classes:
    input:
        objects="results/experiment/objects.parquet",
        classes=expand("results/{sample}/classes.parquet", sample=SAMPLES.index),
        counts="results/experiment/class_counts.tsv",
        metrics="results/experiment/classifier_metrics.json",
        images=expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
        norms=lambda wc: [get_norm(s) for s in SAMPLES.itertuples()],
    output:
        examples=report(
            "results/report/class_examples.png",
            caption="../report/class_examples.rst",
            category="Classes",
            labels={"figure": "example objects per class"},
        ),
        features=report(
            "results/report/features_by_class.png",
            caption="../report/features.rst",
            category="Classes",
            labels={"figure": "feature distributions by class"},
        ),
        counts=report(
            "results/report/class_counts.png",
            caption="../report/class_counts.rst",
            category="Classes",
            labels={"figure": "class counts per sample"},
        ),
        metrics=report(
            "results/report/classifier_metrics.png",
            caption="../report/metrics.rst",
            category="Classes",
            labels={"figure": "classifier metrics"},
        ),
    params:
        report=config["report"],
        samples=list(SAMPLES.index),
    log:
        "logs/report_classes/experiment.log",
    benchmark:
        "benchmarks/report_classes/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_classes.py"


# QC over the experiment: which samples are odd (robust z-scores, flagged ones first).
rule report_qc:
    input:
        raw=expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
        norms=[get_norm(SimpleNamespace(sample=s)) for s in SAMPLES.index],
        segmentation=expand("results/{sample}/segmentation.ome.zarr", sample=SAMPLES.index),
        segments=expand("results/{sample}/segments.parquet", sample=SAMPLES.index),
        tiles=expand("results/{sample}/tiles.parquet", sample=SAMPLES.index),
        classes=expand("results/{sample}/classes.parquet", sample=SAMPLES.index),
        curves=NOISE_CURVES,
    output:
        table="results/experiment/qc.tsv",
        page=report(
            "results/report/qc.html",
            caption="../report/qc.rst",
            category="Quality control",
            labels={"page": "QC table"},
        ),
        figure=report(
            "results/report/qc.png",
            caption="../report/qc.rst",
            category="Quality control",
            labels={"page": "QC figure"},
        ),
    params:
        samples=list(SAMPLES.index),
        report=config["report"],
    log:
        "logs/report_qc/experiment.log",
    benchmark:
        "benchmarks/report_qc/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_qc.py"


# The configuration as run, the software versions and the models (names and hashes). It follows
# every other result, so it is written again whenever a change reran anything.
CONFIG_PAGE = "results/report/config.html"


rule report_config:
    input:
        lambda wc: [t for t in FINAL_TARGETS if t not in (CONFIG_PAGE, "results/report/runtime.png")],
    output:
        report(
            "results/report/config.html",
            caption="../report/config.rst",
            category="Configuration",
            labels={"page": "configuration"},
        ),
    params:
        trained={"restore": "models/restore", "superres": "models/superres",
                 "segment": "models/segment_nuclei", "classify": CLASSIFY_MODEL},
    log:
        "logs/report_config/experiment.log",
    benchmark:
        "benchmarks/report_config/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_config.py"


# Runs after every other final target, so all their benchmark files exist.
rule report_runtime:
    input:
        lambda wc: [t for t in FINAL_TARGETS if t != "results/report/runtime.png"],
    output:
        report(
            "results/report/runtime.png",
            caption="../report/runtime.rst",
            category="Runtime",
            labels={"figure": "runtime per rule"},
        ),
    log:
        "logs/report_runtime/experiment.log",
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_runtime.py"


if SEGMENTATION_MADE:
    FINAL_TARGETS.extend(
        expand("results/report/{sample}_montage.png", sample=SAMPLES.index)
        + [
            "results/report/normalization.png",
            "results/report/features_by_class.png",
            "results/report/class_counts.png",
            "results/report/classifier_metrics.png",
            "results/report/qc.html",
            "results/report/config.html",
            "results/report/runtime.png",
        ]
    )


# HCS plate input: summaries, the plate output, and the plate heat map of the report.
include: "plate.smk"


rule report_plate:
    input:
        "results/experiment/wells.tsv",
    output:
        report(
            "results/report/plate.png",
            caption="../report/plate.rst",
            category="Plate",
            labels={"figure": "plate heat map"},
        ),
    log:
        "logs/report_plate/experiment.log",
    benchmark:
        "benchmarks/report_plate/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("report"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/report_plate.py"


if PLATE_INPUT and SEGMENTATION_MADE:
    FINAL_TARGETS.insert(0, "results/report/plate.png")


# The illumination stage's profiles (when illumination.enabled).
if ILLUMINATION:

    rule report_illumination:
        input:
            ILLUMINATION,
        output:
            report(
                "results/report/illumination.png",
                caption="../report/illumination.rst",
                category="Normalization and noise",
                labels={"figure": "illumination profiles"},
            ),
        log:
            "logs/report_illumination/experiment.log",
        benchmark:
            "benchmarks/report_illumination/experiment.tsv"
        threads: 1
        resources:
            **stage_resources("report"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/report_illumination.py"

    FINAL_TARGETS.append("results/report/illumination.png")
