"""segment -> features -> classify -> report on a tiny demo, the real chain: the shipped nuclei
model segments, each classification mode runs end to end, a parameter change reruns only what it
touches, and the report holds its images."""

import json
import re
import shutil
import zipfile

import pandas as pd
import pytest

from microdiff.provenance import read_table_provenance
from tests.workflow.conftest import TINY, job_counts, snakemake, write_config

SAMPLES = ("demo01", "demo02")
# seven nuclei per sample (the shipped model finds them); one shard per sample; no restoration
DEMO = {**TINY["input"], "demo": {**TINY["input"]["demo"], "shape": [160, 192]}}
SECTIONS = {
    "input": DEMO,
    "tiles": {"tile": 64, "halo": 8, "tiles_per_shard": 16},
    "restore": {**TINY.get("restore", {}), "enabled": False},
}
TARGETS = [
    "results/experiment/objects.parquet",
    "results/experiment/classifier_metrics.json",
    "results/report/runtime.png",
    *[f"results/report/{s}_montage.png" for s in SAMPLES],
    "results/report/normalization.png",
    "results/report/features_by_class.png",
    "results/report/class_counts.png",
    "results/report/classifier_metrics.png",
    "results/report/qc.html",
    "results/report/config.html",
]


def config(wd, name="config.yaml", **classify):
    return write_config(wd, name, **SECTIONS, classify={**TINY["classify"], **classify})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("classify")
    config(wd)
    proc = snakemake(wd, *TARGETS)
    ran = {r: len(list(wd.glob(f"logs/{r}/*.log")))
           for r in ("train_segment", "segment_shard", "segment_gather")}  # fmt: skip
    assert ran == {"train_segment": 0, "segment_shard": 2, "segment_gather": 2}  # shipped model
    return wd, proc


def rerun(run, tmp_path, **classify):
    """A copy of the finished run, run again with the classify section changed."""
    wd = tmp_path / "wd"
    shutil.copytree(run[0], wd, symlinks=True)
    config(wd, **classify)
    dry = job_counts(snakemake(wd, "--dry-run", *TARGETS))
    snakemake(wd, *TARGETS)
    return wd, dry


def classes_of(wd):
    return pd.concat([pd.read_parquet(wd / f"results/{s}/classes.parquet") for s in SAMPLES])


def test_features_per_sample_and_experiment(run):
    wd, _ = run
    per = [pd.read_parquet(wd / f"results/{s}/objects.parquet") for s in SAMPLES]
    exp = pd.read_parquet(wd / "results/experiment/objects.parquet")
    assert len(exp) == sum(len(p) for p in per) > 10
    assert set(exp["kind"]) >= {"nucleus"} and list(exp["sample"].unique()) == list(SAMPLES)
    for p in per:
        assert not p.duplicated(["kind", "id"]).any()
    assert exp["intensity_mean_nuclei"].notna().all() and exp["area_um2"].notna().all()
    assert read_table_provenance(wd / "results/demo01/objects.parquet")["stage"] == "features"


def test_supervised_by_points(run):
    wd, _ = run
    labels = pd.read_csv(wd / "data/demo/labels.tsv", sep="\t")
    assert set(labels.columns) == {"sample", "x", "y", "class"}
    classes = classes_of(wd)
    nuclei = pd.read_parquet(wd / "results/experiment/objects.parquet").query("kind == 'nucleus'")
    assert len(classes) == len(nuclei)
    probs = [c for c in classes.columns if c.startswith("prob_")]
    assert sorted(probs) == ["prob_elongated", "prob_round"]
    assert classes[probs].sum(axis=1).round(6).eq(1).all()
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert metrics["mode"] == "supervised" and metrics["cv"] == "group-kfold"
    assert metrics["n_labelled"] > 0.5 * len(labels) and 0 <= metrics["accuracy"] <= 1
    counts = pd.read_csv(wd / "results/experiment/class_counts.tsv", sep="\t")
    assert counts.groupby("sample")["count"].sum().to_dict() == classes.groupby("sample").size(
    ).to_dict()  # fmt: skip
    summary = pd.read_csv(wd / "results/experiment/classes_summary.tsv", sep="\t")
    assert summary["fraction"].sum() == pytest.approx(1)


def test_unsupervised_reruns_classify_only(run, tmp_path):
    wd, dry = rerun(run, tmp_path, mode="unsupervised", labels=None)
    assert "features" not in dry and dry["classify"] == 1 and "demo_labels" not in dry
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert metrics["mode"] == "unsupervised" and 2 <= metrics["k"] <= 3
    assert set(classes_of(wd)["class"].astype(str)) <= {"0", "1", "2"}


def test_diffusion_mode_trains_then_classifies(run, tmp_path):
    """The default method: a representation trained without labels, a light classifier on it."""
    wd, dry = rerun(run, tmp_path, mode="diffusion")
    assert dry["train_classifier"] == 1 and dry["classify"] == 1 and "features" not in dry
    cfg = json.loads((wd / "models/classify/diffusion/config.json").read_text())
    assert cfg["task"] == "classify-representation"
    objects = pd.read_parquet(wd / "results/experiment/objects.parquet")
    assert cfg["n_train"] == (objects["kind"] == "nucleus").sum()  # every nucleus, labelled or not
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert metrics["mode"] == "diffusion" and metrics["cv"] == "holdout"
    if metrics["embedding_used"]:  # else validation preferred the features and descriptors
        assert "representation" in metrics["method"] and "joined" in metrics["method"]
        assert metrics["n_embedded"] == metrics["n_objects"]
    else:  # said in provenance and log; the objects it was not fitted on were not embedded
        assert "non-diffusion" in metrics["method"]
        assert 0 < metrics["n_embedded"] <= metrics["n_labelled"] - metrics["n_test"]
        assert (
            metrics["light_classifier"]["validation_f1_macro_with_embedding"]
            < (metrics["light_classifier"]["validation_f1_macro"])
        )
        assert "did not raise" in (wd / "logs/classify/experiment.log").read_text()
    assert metrics["n_test"] > 0 and metrics["nfe_per_object"] == 2
    assert metrics["classes"] == ["elongated", "round"] and metrics["s_per_1000_objects"] > 0
    classes = classes_of(wd)
    assert set(classes["class"]) <= {"elongated", "round"}
    assert ((classes["prob_round"] + classes["prob_elongated"]) - 1).abs().max() < 1e-6
    assert (wd / "benchmarks/train_classifier/experiment.tsv").exists()
    # an inference key (the embedding alone) reruns classify, not the training
    diffusion = {**TINY["classify"]["diffusion"], "join": False}
    config(wd, mode="diffusion", diffusion=diffusion)
    dry = job_counts(snakemake(wd, "--dry-run", *TARGETS))
    assert dry["classify"] == 1 and "train_classifier" not in dry
    snakemake(wd, "results/experiment/classifier_metrics.json")
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert "joined" not in metrics["method"] and metrics["n_test"] > 0
    assert metrics["embedding_used"]  # the embedding alone has no rival
    assert metrics["n_embedded"] == metrics["n_objects"]
    # without labels the embeddings are clustered, as the unsupervised mode clusters features
    config(wd, mode="diffusion", labels=None, unsupervised={"k": 2})
    snakemake(wd, *TARGETS)
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert "Gaussian mixture" in metrics["method"] and metrics["k"] == 2
    assert metrics["cv"].startswith("none") and metrics["nfe_per_object"] == 2
    assert set(classes_of(wd)["class"].astype(str)) == {"0", "1"}
    assert "no labels" in (wd / "logs/train_classifier/experiment.log").read_text()


def test_diffusion_lowest_error_method(run, tmp_path):
    diffusion = {**TINY["classify"]["diffusion"], "method": "lowest_error"}
    wd, dry = rerun(run, tmp_path, mode="diffusion", diffusion=diffusion)
    assert dry["train_classifier"] == 1 and dry["classify"] == 1
    cfg = json.loads((wd / "models/classify/diffusion/config.json").read_text())
    assert cfg["task"] == "classify-diffusion" and cfg["classes"] == ["elongated", "round"]
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert metrics["mode"] == "diffusion" and metrics["cv"] == "holdout"
    assert metrics["n_test"] > 0 and len(metrics["sigmas"]) == 4
    assert metrics["prior"] == "uniform"
    # an inference key (the class prior) reruns classify, not the training
    config(wd, mode="diffusion", diffusion={**diffusion, "prior": "train"})
    dry = job_counts(snakemake(wd, "--dry-run", *TARGETS))
    assert dry["classify"] == 1 and "train_classifier" not in dry
    snakemake(wd, "results/experiment/classifier_metrics.json")
    metrics = json.loads((wd / "results/experiment/classifier_metrics.json").read_text())
    assert metrics["prior"] == "class counts" and metrics["n_test"] > 0


def test_report_holds_every_figure_and_runtimes(run):
    wd, _ = run
    snakemake(wd, "--report", "report.zip", *TARGETS)
    with zipfile.ZipFile(wd / "report.zip") as z:
        names = z.namelist()
        pngs = {n.rsplit("/", 1)[-1] for n in names if n.endswith(".png")}
        html = "".join(z.read(n).decode(errors="ignore") for n in names if n.endswith(".html"))
    assert {f"{s}_montage.png" for s in SAMPLES} <= pngs
    from matplotlib.image import imread

    montage = imread(wd / f"results/report/{SAMPLES[0]}_montage.png")
    assert montage.shape[0] > montage.shape[1] / 2  # the whole view and rows of crops below it
    assert {"normalization.png", "features_by_class.png", "class_counts.png"} <= pngs
    assert {"classifier_metrics.png", "runtime.png", "class_examples.png"} <= pngs
    examples = imread(wd / "results/report/class_examples.png")
    assert examples.shape[0] > 150 and examples.std() > 0.05  # a row of crops per class
    # Snakemake's own statistics: a runtime per job of every rule that ran
    runtimes = dict(re.findall(r'\{"rule": "(\w+)", "runtime": ([0-9.]+)\}', html))
    assert {"features", "classify", "report_montage", "report_classes"} <= set(runtimes)
    runtime = pd.read_csv(wd / "benchmarks/classify/experiment.tsv", sep="\t")
    assert runtime["s"].iloc[0] > 0
    # the runtime figure's table holds every rule that ran before it, itself included
    drawn = wd / "logs/report_runtime/experiment.log"
    before = {p.parent.name for p in (wd / "logs").glob("*/*.log")
              if p.stat().st_mtime_ns <= drawn.stat().st_mtime_ns}  # fmt: skip
    listed = set(re.findall(r"^\s*(\w+)\s+\d+\s", drawn.read_text(), re.M))
    assert before <= listed, before - listed
    # the QC page (one row per sample) and the configuration with the models by hash
    assert {"qc.png"} <= pngs and any(n.endswith("qc.html") for n in names)
    qc = pd.read_csv(wd / "results/experiment/qc.tsv", sep="\t")
    assert sorted(qc["sample"]) == list(SAMPLES) and (qc["nuclei"] > 0).all()
    page = (wd / "results/report/config.html").read_text()
    assert "<h3>Configuration</h3>" in page and "weights_sha256" in page
    assert "src/microdiff/models" not in page  # names and hashes, not build paths
