# The tile plan: a checkpoint, since the number of shards each sample fans out to is known only
# once the image's shape and chunks are.


checkpoint tiles:
    input:
        "results/{sample}/raw.ome.zarr",
    output:
        "results/{sample}/tiles.parquet",
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
