# HCS plates (input.plate): per-well and per-plate summaries and the outputs laid out as an
# NGFF plate (plate.output). Included from report.smk, after classify and features.
PLATE_INPUT = bool(config["input"].get("plate"))
PLATE_FIELDS = (
    SAMPLES[["sample", *PLATE_COLUMNS]].to_dict("records") if PLATE_INPUT else []
)
PLATE_IMAGE = "restored" if config.get("restore", {}).get("enabled") else "raw"


rule plate_summary:
    input:
        objects="results/experiment/objects.parquet",
        counts="results/experiment/class_counts.tsv",
    output:
        wells="results/experiment/wells.tsv",
        plate="results/experiment/plate.tsv",
    params:
        fields=PLATE_FIELDS,
    log:
        "logs/plate_summary/experiment.log",
    benchmark:
        "benchmarks/plate_summary/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("plate_summary"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/plate_summary.py"


rule plate_output:
    input:
        images=expand("results/{sample}/{image}.ome.zarr", sample=SAMPLES.index, image=PLATE_IMAGE),
        labels=expand(
            "results/{sample}/segmentation.ome.zarr",
            sample=SAMPLES.index if SEGMENTATION_MADE else [],
        ),
    output:
        directory("results/experiment/plate.ome.zarr"),
    params:
        fields=PLATE_FIELDS,
    log:
        "logs/plate_output/experiment.log",
    benchmark:
        "benchmarks/plate_output/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("plate_output"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/plate_output.py"


if PLATE_INPUT:
    if config.get("plate", {}).get("output", True):
        FINAL_TARGETS.append("results/experiment/plate.ome.zarr")
    if SEGMENTATION_MADE:
        FINAL_TARGETS.extend(["results/experiment/wells.tsv", "results/experiment/plate.tsv"])
