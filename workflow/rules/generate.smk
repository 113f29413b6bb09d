# The generate stage: diffusion-generated training data. A diffusion model of images conditioned
# on instance masks (and object classes where known) is trained on the annotated pairs
# (train_generate, GPU rule); new masks are drawn from the annotated objects and an image is
# sampled for each (generate_pairs: results/synthetic/pairs/pair-NNNN.ome.zarr + manifest.parquet);
# whole-image samples go to the report (generate_examples). With generate.train_segment the
# segment stage's train_segment mixes the pairs into its training (see segment.smk).
from microdiff.generate import settings as generate_settings

if generate_settings.enabled(config):

    rule train_generate:
        input:
            generate_inputs(),
        output:
            directory(GENERATE_MODEL),
        params:
            generate=generate_settings.training_params(config),
        log:
            "logs/train_generate/train.log",
        benchmark:
            "benchmarks/train_generate/train.tsv"
        threads: stage_threads("generate")
        resources:
            **stage_resources("generate", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/generate_train.py"

    rule generate_pairs:
        input:
            model=GENERATE_MODEL,
            annotated=generate_inputs(),
        output:
            pairs=directory(SYNTHETIC_PAIRS),
            manifest=SYNTHETIC_MANIFEST,
        params:
            generate=generate_settings.output_params(config),
        log:
            "logs/generate_pairs/pairs.log",
        benchmark:
            "benchmarks/generate_pairs/pairs.tsv"
        threads: stage_threads("generate")
        resources:
            **stage_resources("generate", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/generate_pairs.py"

    rule generate_examples:
        input:
            model=GENERATE_MODEL,
            annotated=generate_inputs(),
        output:
            report(
                SYNTHETIC_EXAMPLES,
                category="Synthetic data",
                caption="../report/generate.rst",
            ),
        params:
            generate=generate_settings.examples_params(config),
        log:
            "logs/generate_examples/examples.log",
        benchmark:
            "benchmarks/generate_examples/examples.tsv"
        threads: stage_threads("generate")
        resources:
            **stage_resources("generate", gpu=True),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/generate_examples.py"

    FINAL_TARGETS.extend([SYNTHETIC_MANIFEST, SYNTHETIC_EXAMPLES])
