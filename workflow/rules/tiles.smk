# The tile plan: a checkpoint, since the number of shards each sample fans out to is known only
# once the image's shape and chunks are. Batched samples need no checkpoint: their stage jobs
# run every shard themselves.


checkpoint tiles:
    input:
        raw="results/{sample}/raw.ome.zarr",
    output:
        plan="results/{sample}/tiles.parquet",
    params:
        tiles=config["tiles"],
    log:
        "logs/tiles/{sample}.log",
    benchmark:
        "benchmarks/tiles/{sample}.tsv"
    threads: 1
    resources:
        **stage_resources("tiles"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/tiles.py"


for batch, members in BATCHES.items():
    _rows = per_sample(
        members,
        input={"raw": "results/{sample}/raw.ome.zarr"},
        output={"plan": "results/{sample}/tiles.parquet"},
    )

    rule:
        name:
            f"tiles_{batch}"
        input:
            raw=flat(_rows, "input", "raw"),
        output:
            plan=flat(_rows, "output", "plan"),
        params:
            tiles=config["tiles"],
            members=_rows,
        log:
            f"logs/tiles_batch/{batch}.log",
        benchmark:
            f"benchmarks/tiles_batch/{batch}.tsv"
        threads: 1
        resources:
            **stage_resources("tiles"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/tiles.py"
