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
        # a plate field's plate, well, row, column, field: columns of the table
        sources={
            s: {c: str(SAMPLES.at[s, c]) for c in PLATE_COLUMNS if c in SAMPLES.columns}
            for s in SAMPLES.index
            if "well" in SAMPLES.columns and isinstance(SAMPLES.at[s, "well"], str)
        },
    log:
        "logs/sample_table/experiment.log",
    benchmark:
        "benchmarks/sample_table/experiment.tsv"
    threads: 1
    resources:
        **stage_resources("sample_table"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/sample_table.py"
