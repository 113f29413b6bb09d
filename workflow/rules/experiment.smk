# Experiment-wide tables.


rule sample_table:
    input:
        raw=expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
        tiles=expand("results/{sample}/tiles.parquet", sample=SAMPLES.index),
        norm=lambda wc: [get_norm(s) for s in SAMPLES.itertuples()],
    output:
        "results/experiment/samples.tsv",
    params:
        samples=list(SAMPLES.index),
    log:
        "logs/sample_table/experiment.log",
    threads: 1
    resources:
        **stage_resources("sample_table"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/sample_table.py"
