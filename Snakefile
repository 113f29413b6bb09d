# microdiff: a whole microscopy experiment through diffusion-based restoration, segmentation and
# classification. This file stays thin: config, validation, includes, the final targets.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/illumination.smk"
include: "workflow/rules/tiles.smk"
include: "workflow/rules/normalize.smk"
include: "workflow/rules/restore.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/experiment.smk"


rule all:
    input:
        FINAL_TARGETS,
    default_target: True
