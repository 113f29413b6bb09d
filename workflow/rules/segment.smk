# The segment stage: diffusion segmentation with uncertainty. Shard jobs sample the model K
# times per tile batch (GPU rules), with the shipped cell model beside a nuclei-only model
# (segment.cell_model); the gather stitches instances into NGFF labels. segment.method bright
# replaces both with one per-sample rule (segment_bright: threshold + watershed of dark cells
# on a bright background, non-diffusion).
from microdiff.segment import settings as segment_settings

if config["segment"]["enabled"]:
    FINAL_TARGETS += expand(
        "results/{sample}/{name}",
        sample=SAMPLES.index,
        name=["segmentation.ome.zarr", "segments.parquet"],
    )

if segment_settings.training(config) and config["segment"].get("method", "diffusion") == "diffusion":

    rule train_segment:
        input:
            images=segment_train_inputs(),
            **synthetic_inputs(),
        output:
            segment_model(),
        params:
            segment=segment_settings.training_params(config),
            **synthetic_params(),
        log:
            "logs/train_segment/train.log",
        benchmark:
            "benchmarks/train_segment/train.tsv"
        threads: stage_threads("segment")
        resources:
            **stage_resources("segment", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/train_segment.py"


SEGMENT_OUTPUT = {
    "image": "results/{sample}/segmentation.ome.zarr",
    "table": "results/{sample}/segments.parquet",
}
SEGMENT_INPUT = {"image": lambda w: segment_image(w.sample), "norm": get_norm}

if config["segment"].get("method", "diffusion") == "bright":

    rule segment_bright:
        input:
            image=lambda w: segment_image(w.sample),
            norm=get_norm,
        output:
            image=directory("results/{sample}/segmentation.ome.zarr"),
            table="results/{sample}/segments.parquet",
        params:
            segment=config["segment"],
        log:
            "logs/segment_bright/{sample}.log",
        benchmark:
            "benchmarks/segment_bright/{sample}.tsv"
        threads: 1
        resources:
            **stage_resources("segment_gather"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/segment_bright.py"

    for batch, members in BATCHES.items():
        _rows = per_sample(members, input=SEGMENT_INPUT, output=SEGMENT_OUTPUT)

        rule:
            name:
                f"segment_bright_{batch}"
            input:
                image=flat(_rows, "input", "image"),
                norm=flat(_rows, "input", "norm"),
            output:
                image=flat(_rows, "output", "image", directory),
                table=flat(_rows, "output", "table"),
            params:
                segment=config["segment"],
                members=_rows,
            log:
                f"logs/segment_bright_batch/{batch}.log",
            benchmark:
                f"benchmarks/segment_bright_batch/{batch}.tsv"
            threads: 1
            resources:
                **stage_resources("segment_gather"),
            conda:
                "../../envs/image.yaml"
            script:
                "../../scripts/segment_bright.py"

else:

    rule segment_shard:
        input:
            image=lambda w: segment_image(w.sample),
            norm=get_norm,
            plan=get_tile_plan,
            model=segment_model(),
            **segment_cell_model(),
        output:
            temp(directory(SEGMENT_SHARD)),
        params:
            segment=config["segment"],
        log:
            "logs/segment_shard/{sample}_{shard}.log",
        benchmark:
            "benchmarks/segment_shard/{sample}_{shard}.tsv"
        threads: stage_threads("segment")
        resources:
            **stage_resources("segment", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/segment_shard.py"


    rule segment_gather:
        input:
            image=lambda w: segment_image(w.sample),
            norm=get_norm,
            plan=get_tile_plan,
            shards=lambda w: shard_stores(w, SEGMENT_SHARD),
        output:
            image=directory("results/{sample}/segmentation.ome.zarr"),
            table="results/{sample}/segments.parquet",
        params:
            segment=config["segment"],
        log:
            "logs/segment_gather/{sample}.log",
        benchmark:
            "benchmarks/segment_gather/{sample}.tsv"
        threads: 1
        resources:
            **stage_resources("segment_gather"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/segment_gather.py"

    for batch, members in BATCHES.items():
        _rows = per_sample(
            members,
            input={**SEGMENT_INPUT, "plan": "results/{sample}/tiles.parquet"},
            output=SEGMENT_OUTPUT,
        )

        rule:
            name:
                f"segment_{batch}"
            input:
                image=flat(_rows, "input", "image"),
                norm=flat(_rows, "input", "norm"),
                plan=flat(_rows, "input", "plan"),
                model=segment_model(),
                **segment_cell_model(),
            output:
                image=flat(_rows, "output", "image", directory),
                table=flat(_rows, "output", "table"),
            params:
                segment=config["segment"],
                members=_rows,
            log:
                f"logs/segment_batch/{batch}.log",
            benchmark:
                f"benchmarks/segment_batch/{batch}.tsv"
            threads: stage_threads("segment")
            resources:
                **stage_resources("segment", gpu=True),
            conda:
                "../../envs/torch.yaml"
            script:
                "../../scripts/segment_batch.py"
