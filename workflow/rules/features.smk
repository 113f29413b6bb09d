# The features stage: one row per segmented object (nuclei; cells when segmented), measured
# tile-wise on the raw image (true units) and optionally on the restored one too.
FEATURE_IMAGES = ["raw"] + (
    ["restored"]
    if config["features"].get("restored") and config.get("restore", {}).get("enabled")
    else []
)


rule features:
    input:
        segmentation="results/{sample}/segmentation.ome.zarr",
        segments="results/{sample}/segments.parquet",
        images=expand("results/{{sample}}/{image}.ome.zarr", image=FEATURE_IMAGES),
        norm=get_norm if ILLUMINATION else [],  # flat-field corrected raw intensities
    output:
        objects="results/{sample}/objects.parquet",
    params:
        features=config["features"],
    log:
        "logs/features/{sample}.log",
    benchmark:
        "benchmarks/features/{sample}.tsv"
    threads: 1
    resources:
        **stage_resources("features"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/features.py"


for batch, members in BATCHES.items():
    _rows = per_sample(
        members,
        input={
            "segmentation": "results/{sample}/segmentation.ome.zarr",
            "segments": "results/{sample}/segments.parquet",
            "images": [f"results/{{sample}}/{image}.ome.zarr" for image in FEATURE_IMAGES],
            "norm": get_norm if ILLUMINATION else [],
        },
        output={"objects": "results/{sample}/objects.parquet"},
    )

    rule:
        name:
            f"features_{batch}"
        input:
            segmentation=flat(_rows, "input", "segmentation"),
            segments=flat(_rows, "input", "segments"),
            images=flat(_rows, "input", "images"),
            norm=flat(_rows, "input", "norm"),
        output:
            objects=flat(_rows, "output", "objects"),
        params:
            features=config["features"],
            members=_rows,
        log:
            f"logs/features_batch/{batch}.log",
        benchmark:
            f"benchmarks/features_batch/{batch}.tsv"
        threads: 1
        resources:
            **stage_resources("features"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/features.py"


rule features_experiment:
    input:
        expand("results/{sample}/objects.parquet", sample=SAMPLES.index),
    output:
        "results/experiment/objects.parquet",
    log:
        "logs/features_experiment/experiment.log",
    benchmark:
        "benchmarks/features_experiment/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("features"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/features_experiment.py"


# Final targets only once a rule makes the segment stage's output (so the workflow keeps
# running while that stage is not wired in); the rules above can be asked for by name.
SEGMENTATION_MADE = config.get("segment", {}).get("enabled", True) and any(
    str(o).endswith("segmentation.ome.zarr") for r in workflow.rules for o in r.output
)
if SEGMENTATION_MADE:
    FINAL_TARGETS.append("results/experiment/objects.parquet")
