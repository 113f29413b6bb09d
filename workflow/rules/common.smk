# Samples, wildcard constraints and input functions (get_*) shared by every stage.
import microdiff
from microdiff import samples as sample_sheet
from microdiff.checks import check_config
from microdiff.io.plate import PLATE_COLUMNS

SAMPLES = sample_sheet.load(config["input"])
# The final targets; each stage file appends the outputs its stage adds.
FINAL_TARGETS = ["results/experiment/samples.tsv"]
sample_sheet.check_channel_counts(SAMPLES)
if config["input"].get("sheet"):
    validate(SAMPLES, "../schemas/samples.schema.yaml")
check_config(config, SAMPLES)


wildcard_constraints:
    sample=sample_sheet.NAME_PATTERN,


def get_image(wildcards):
    return SAMPLES.loc[wildcards.sample, "path"]


def get_sample_info(wildcards):
    """The sample sheet's optional columns for one sample, as ingest parameters."""
    row = SAMPLES.loc[wildcards.sample]
    channels = row["channels"].split(",") if row["channels"] else None
    pixel_size = float(row["pixel_size"]) if row["pixel_size"] else None
    if pixel_size is None and config["input"].get("demo"):
        pixel_size = config["input"]["demo"].get("pixel_size")
    info = {"axes": row["axes"], "channels": channels, "pixel_size": pixel_size}
    info["scene"] = row["scene"]
    info["source"] = {c: row[c] for c in PLATE_COLUMNS if c in row.index} or None
    return info


def get_norm(wildcards):
    """The statistics a sample is normalized with: its own, or pooled over the experiment."""
    if config["normalize"]["mode"] == "experiment":
        return "results/experiment/norm.json"
    return f"results/{wildcards.sample}/norm.json"


def get_tile_plan(wildcards):
    """The tile plan, through the checkpoint: rules that fan out over shards call this."""
    return checkpoints.tiles.get(sample=wildcards.sample).output[0]


def stage_resources(stage, gpu=False):
    """Cluster resources for a rule: config resources[stage], then resources.default_gpu (GPU
    rules only), then resources.default. GPU rules ask for one GPU (of resources.gpu_model) on
    resources.gpu_partition, the others go to resources.cpu_partition."""
    res = config["resources"]
    base = {**res["default"], **(res.get("default_gpu") or {})} if gpu else res["default"]
    merged = {**base, **(res.get(stage) or {})}
    out = {"mem_mb": merged["mem_mb"], "runtime": merged["runtime"]}
    partition = res["gpu_partition"] if gpu else res["cpu_partition"]
    if partition:
        out["slurm_partition"] = partition
    if gpu:
        out["gpu"] = 1
        if res.get("gpu_model"):
            out["gpu_model"] = res["gpu_model"]
    return out


def stage_threads(stage, gpu=False):
    """Threads for a rule: resources[stage].threads, else the (GPU) default's."""
    res = config["resources"]
    base = {**res["default"], **(res.get("default_gpu") or {})} if gpu else res["default"]
    return {**base, **(res.get(stage) or {})}["threads"]

