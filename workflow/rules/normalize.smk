# Per-channel robust statistics (streamed); later stages apply the transform on the fly.


rule normalize:
    input:
        raw="results/{sample}/raw.ome.zarr",
        illumination=ILLUMINATION,
    output:
        norm="results/{sample}/norm.json",
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


for batch, members in BATCHES.items():
    _rows = per_sample(
        members,
        input={"raw": "results/{sample}/raw.ome.zarr"},
        output={"norm": "results/{sample}/norm.json"},
    )

    rule:
        name:
            f"normalize_{batch}"
        input:
            raw=flat(_rows, "input", "raw"),
            illumination=ILLUMINATION,
        output:
            norm=flat(_rows, "output", "norm"),
        params:
            normalize=config["normalize"],
            members=_rows,
        log:
            f"logs/normalize_batch/{batch}.log",
        benchmark:
            f"benchmarks/normalize_batch/{batch}.tsv"
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
