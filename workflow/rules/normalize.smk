# Per-channel robust statistics (streamed); later stages apply the transform on the fly.


rule normalize:
    input:
        "results/{sample}/raw.ome.zarr",
        illumination=ILLUMINATION,
    output:
        "results/{sample}/norm.json",
    params:
        normalize=config["normalize"],
    log:
        "logs/normalize/{sample}.log",
    benchmark:
        "benchmarks/normalize/{sample}.tsv"
    threads: 1
    resources:
        **stage_resources("normalize"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/normalize.py"


rule normalize_experiment:
    input:
        expand("results/{sample}/norm.json", sample=SAMPLES.index),
    output:
        "results/experiment/norm.json",
    params:
        normalize=config["normalize"],
    log:
        "logs/normalize_experiment/experiment.log",
    benchmark:
        "benchmarks/normalize_experiment/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("normalize"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/normalize_experiment.py"
