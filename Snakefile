# microdiff: a whole microscopy experiment through diffusion-based restoration, segmentation and
# classification. This file stays thin: config, validation, includes, the final targets.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/tiles.smk"
include: "workflow/rules/normalize.smk"
include: "workflow/rules/experiment.smk"


rule all:
    input:
        final_targets(),
    default_target: True
