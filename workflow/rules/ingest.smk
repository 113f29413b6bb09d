# Any input image -> results/{sample}/raw.ome.zarr (NGFF, pyramid, provenance), streamed.


rule ingest:
    input:
        image=get_image,
    output:
        directory("results/{sample}/raw.ome.zarr"),
    params:
        ingest=config["ingest"],
        sample=get_sample_info,
    log:
        "logs/ingest/{sample}.log",
    benchmark:
        "benchmarks/ingest/{sample}.tsv"
    threads: stage_threads("ingest")
    resources:
        **stage_resources("ingest"),
    conda:
        "../../envs/image.yaml"
    script:
        "../../scripts/ingest.py"
