# The restore stage (denoising, optional super-resolution) with diffusion models. One model per
# experiment (train_restore), then per sample one job per shard of tiles and a gather into
# results/{sample}/restored.ome.zarr: float32 in the raw image's units, same channels, NGFF
# scale finer by superres.factor; posterior std in restored.ome.zarr/uncertainty when
# inference.samples > 1. Training parameters live in train_restore's params only, inference
# parameters in the shard and gather rules only, so changing the sampler, steps or K never
# retrains. restore.enabled: false skips the stage (later stages then read raw.ome.zarr).
from microdiff.restore import settings as restore_settings

if config.get("restore", {}).get("enabled", False):

    wildcard_constraints:
        shard=r"\d+",

    rule train_restore:
        input:
            raw=expand("results/{sample}/raw.ome.zarr", sample=SAMPLES.index),
            norm=lambda wc: [get_norm(s) for s in SAMPLES.itertuples()],
            pairs=restore_settings.pair_files(config["restore"]),
        output:
            directory("models/restore"),
        params:
            restore=restore_settings.training_params(config["restore"]),
        log:
            "logs/train_restore/experiment.log",
        benchmark:
            "benchmarks/train_restore/experiment.tsv"
        threads: stage_threads("train_restore")
        resources:
            **stage_resources("train_restore", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/restore_train.py"

    rule restore_shard:
        input:
            raw="results/{sample}/raw.ome.zarr",
            plan=get_tile_plan,
            norm=get_norm,
            model="models/restore",
        output:
            temp(directory(RESTORE_SHARD)),
        params:
            restore=restore_settings.inference_params(config["restore"]),
        log:
            "logs/restore_shard/{sample}-{shard}.log",
        benchmark:
            "benchmarks/restore_shard/{sample}-{shard}.tsv"
        threads: stage_threads("restore")
        resources:
            **stage_resources("restore", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/restore_shard.py"

    rule restore_gather:
        input:
            raw="results/{sample}/raw.ome.zarr",
            plan=get_tile_plan,
            model="models/restore",
            shards=lambda wc: shard_stores(wc, RESTORE_SHARD),
        output:
            directory("results/{sample}/restored.ome.zarr"),
        params:
            restore=restore_settings.inference_params(config["restore"]),
        log:
            "logs/restore_gather/{sample}.log",
        benchmark:
            "benchmarks/restore_gather/{sample}.tsv"
        threads: 1
        resources:
            **stage_resources("restore_gather"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/restore_gather.py"

    for batch, members in BATCHES.items():
        _rows = per_sample(
            members,
            input={"raw": "results/{sample}/raw.ome.zarr", "plan": "results/{sample}/tiles.parquet",
                   "norm": get_norm},  # fmt: skip
            output={"restored": "results/{sample}/restored.ome.zarr"},
        )

        rule:
            name:
                f"restore_{batch}"
            input:
                raw=flat(_rows, "input", "raw"),
                plan=flat(_rows, "input", "plan"),
                norm=flat(_rows, "input", "norm"),
                model="models/restore",
            output:
                restored=flat(_rows, "output", "restored", directory),
            params:
                restore=restore_settings.inference_params(config["restore"]),
                members=_rows,
            log:
                f"logs/restore_batch/{batch}.log",
            benchmark:
                f"benchmarks/restore_batch/{batch}.tsv"
            threads: stage_threads("restore")
            resources:
                **stage_resources("restore", gpu=True),
            conda:
                "../../envs/torch.yaml"
            script:
                "../../scripts/restore_batch.py"

    FINAL_TARGETS.extend(expand("results/{sample}/restored.ome.zarr", sample=SAMPLES.index))

# Super-resolution (restore.superres, off by default): one conditional diffusion model per
# experiment (train_superres: pairs made from the experiment's own images by the PSF + binning
# model, or the LR/HR pairs of superres.pairs), then per sample one job per shard of tiles and a
# gather into results/{sample}/superres.ome.zarr: the y/x grid finer by superres.factor and the
# NGFF scale divided by it, float32 in the input's units, posterior std in
# superres.ome.zarr/uncertainty when superres.inference.samples > 1. SR reads restored.ome.zarr
# when the restore stage is enabled, raw.ome.zarr otherwise. Training parameters live in
# train_superres's params only, so changing the sampler, steps or K never retrains.
from microdiff.restore import superres_settings as superres_wf

if superres_wf.enabled(config):

    wildcard_constraints:
        shard=r"\d+",

    rule train_superres:
        input:
            images=lambda wc: [superres_image(s) for s in SAMPLES.index],
            norm=lambda wc: [get_norm(s) for s in SAMPLES.itertuples()],
            pairs=superres_wf.pair_files(config),
        output:
            directory("models/superres"),
        params:
            superres=superres_wf.training_params(config),
        log:
            "logs/train_superres/experiment.log",
        benchmark:
            "benchmarks/train_superres/experiment.tsv"
        threads: stage_threads("train_superres")
        resources:
            **stage_resources("train_superres", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/superres_train.py"

    rule superres_shard:
        input:
            image=lambda wc: superres_image(wc.sample),
            plan=get_tile_plan,
            norm=get_norm,
            model="models/superres",
        output:
            temp(directory(SUPERRES_SHARD)),
        params:
            superres=superres_wf.inference_params(config),
        log:
            "logs/superres_shard/{sample}-{shard}.log",
        benchmark:
            "benchmarks/superres_shard/{sample}-{shard}.tsv"
        threads: stage_threads("superres")
        resources:
            **stage_resources("superres", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/superres_shard.py"

    rule superres_gather:
        input:
            image=lambda wc: superres_image(wc.sample),
            plan=get_tile_plan,
            model="models/superres",
            shards=lambda wc: shard_stores(wc, SUPERRES_SHARD),
        output:
            directory("results/{sample}/superres.ome.zarr"),
        params:
            superres=superres_wf.inference_params(config),
        log:
            "logs/superres_gather/{sample}.log",
        benchmark:
            "benchmarks/superres_gather/{sample}.tsv"
        threads: 1
        resources:
            **stage_resources("superres_gather"),
        conda:
            "../../envs/image.yaml"
        script:
            "../../scripts/superres_gather.py"

    for batch, members in BATCHES.items():
        _rows = per_sample(
            members,
            input={"image": lambda w: superres_image(w.sample),
                   "plan": "results/{sample}/tiles.parquet", "norm": get_norm},  # fmt: skip
            output={"superres": "results/{sample}/superres.ome.zarr"},
        )

        rule:
            name:
                f"superres_{batch}"
            input:
                image=flat(_rows, "input", "image"),
                plan=flat(_rows, "input", "plan"),
                norm=flat(_rows, "input", "norm"),
                model="models/superres",
            output:
                superres=flat(_rows, "output", "superres", directory),
            params:
                superres=superres_wf.inference_params(config),
                members=_rows,
            log:
                f"logs/superres_batch/{batch}.log",
            benchmark:
                f"benchmarks/superres_batch/{batch}.tsv"
            threads: stage_threads("superres")
            resources:
                **stage_resources("superres", gpu=True),
            conda:
                "../../envs/torch.yaml"
            script:
                "../../scripts/superres_batch.py"

    FINAL_TARGETS.extend(expand("results/{sample}/superres.ome.zarr", sample=SAMPLES.index))
