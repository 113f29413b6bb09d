# Any input image -> results/{sample}/raw.ome.zarr (NGFF, pyramid, provenance), streamed.


rule ingest:
    input:
        image=get_image,
    output:
        raw=directory("results/{sample}/raw.ome.zarr"),
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


for batch, members in BATCHES.items():
    _rows = per_sample(
        members,
        input={"image": get_image},
        output={"raw": "results/{sample}/raw.ome.zarr"},
        sample=get_sample_info,
    )

    rule:
        name:
            f"ingest_{batch}"
        input:
            image=flat(_rows, "input", "image"),
        output:
            raw=flat(_rows, "output", "raw", directory),
        params:
            ingest=config["ingest"],
            members=_rows,
        log:
            f"logs/ingest_batch/{batch}.log",
        benchmark:
            f"benchmarks/ingest_batch/{batch}.tsv"
        threads: stage_threads("ingest")
        resources:
            **stage_resources("ingest"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/ingest.py"
