# Flat-field (and dark-field) profiles per channel over the experiment (BaSiC), optional: with
# illumination.enabled, normalize takes its statistics on corrected images and every stage reads
# raw.ome.zarr corrected on the fly (the corrected image is never written). Its parameters rerun
# it and what follows, never ingest.
ILLUMINATION = (
    ["results/experiment/illumination.ome.zarr"]
    if config.get("illumination", {}).get("enabled")
    else []
)

if ILLUMINATION:

    rule illumination:
        input:
            expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
        output:
            directory("results/experiment/illumination.ome.zarr"),
        params:
            illumination=config["illumination"],
        log:
            "logs/illumination/experiment.log",
        benchmark:
            "benchmarks/illumination/experiment.tsv"
        threads: 1
        resources:
            **stage_resources("illumination"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/illumination.py"
