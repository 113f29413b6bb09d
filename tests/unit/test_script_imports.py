"""Start-up of the workflow's jobs: a rule's script imports only what its rule uses.

Every job is a fresh Python process, so its imports are paid per job (torch alone is seconds).
The scripts of rules that run no network must not import torch, and those that draw no figure
must not import matplotlib. Each script's own import statements run here in a fresh interpreter,
as they do in the job; every script is classified, so a new one has to be placed."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"

# rules that run a diffusion network, train one or load and save a checkpoint's weights
NETWORK = {
    "generate_examples", "generate_pairs", "generate_train", "restore_batch", "restore_shard",
    "segment_batch", "segment_shard", "superres_batch", "superres_shard", "superres_train",
    "train_segment",
}  # fmt: skip
# restore_train imports torch only when it trains or re-saves a model: the shipped default as it
# is (restore.train false) is a copy (restore.pretrained), a CPU rule like the others
# CPU rules that still import torch: the SR gather takes its NFE count from the samplers (torch)
# and its module holds the SR training and shard functions
KNOWN = {"superres_gather"}
# CPU rules that draw a figure (matplotlib)
FIGURES = {
    "generate_examples", "report_classes", "report_illumination", "report_montage",
    "report_normalization", "report_plate", "report_qc", "report_runtime",
}  # fmt: skip


def _import_code(script: Path) -> str:
    tree = ast.parse(script.read_text(), str(script))
    return "\n".join(
        ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    )


def _loaded(script: Path) -> set[str]:
    """Top-level names of the modules loaded by `script`'s imports, in a fresh interpreter."""
    return _loaded_after(_import_code(script))


def _loaded_after(code: str) -> set[str]:
    """The top-level packages loaded after running `code` in a fresh interpreter."""
    code += "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
        check=True,
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_every_script_is_classified():
    names = {p.stem for p in SCRIPTS.glob("*.py")}
    assert (NETWORK | FIGURES | KNOWN) - names == set(), "listed scripts that no longer exist"
    assert names  # the CPU-only scripts are every other one


CPU_SCRIPTS = sorted(p.stem for p in SCRIPTS.glob("*.py") if p.stem not in NETWORK)


@pytest.mark.parametrize("name", CPU_SCRIPTS)
def test_cpu_rules_import_no_torch(name):
    loaded = _loaded(SCRIPTS / f"{name}.py")
    if name in KNOWN:  # still true, or the exception goes
        assert "torch" in loaded, f"scripts/{name}.py no longer imports torch: drop it from KNOWN"
    else:
        assert "torch" not in loaded, f"scripts/{name}.py imports torch without running a network"
    if name not in FIGURES:
        assert "matplotlib" not in loaded, f"scripts/{name}.py imports matplotlib, draws nothing"


@pytest.mark.parametrize("name", sorted(NETWORK))
def test_network_rules_load_torch_with_sleeping_openmp_threads(name):
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads: microdiff (which sets it) first."""
    code = _import_code(SCRIPTS / f"{name}.py") + (
        "\nimport json, os, sys\n"
        "print(json.dumps([list(sys.modules), os.environ.get('OMP_WAIT_POLICY')]))"
    )
    for preset, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        env = {"PYTHONPATH": str(ROOT / "src"), "PATH": ""}
        if preset:
            env["OMP_WAIT_POLICY"] = preset  # a user's own setting is kept
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=True,
        )
        order, policy = json.loads(proc.stdout.splitlines()[-1])
        assert policy == expected
        assert order.index("microdiff") < order.index("torch"), f"{name}: torch before microdiff"


def test_joining_the_object_tables_loads_no_image_libraries(tmp_path):
    """features_experiment's work (not only its imports) needs neither scipy nor zarr."""
    import pandas as pd

    pd.DataFrame({"id": [1, 2]}).to_parquet(tmp_path / "a.parquet")
    code = (
        "from microdiff import features\n"
        f"t = features.experiment_table([{str(tmp_path / 'a.parquet')!r}] * 2)\n"
        "assert len(t) == 4\n"
    )
    assert not {"scipy", "zarr", "skimage"} & _loaded_after(code)


def test_the_shipped_restore_model_as_is_loads_no_torch():
    """restore.pretrained (train_restore without training) and what it calls import no torch,
    nor pandas: the noise fit cuts patch boxes (tiling), it builds no tile plan (0.35 s)."""
    loaded = _loaded_after("from microdiff.restore import pretrained, noise_fit, noise_model")
    assert not {"torch", "pandas"} & loaded


def test_building_a_tile_plan_still_gives_a_data_frame():
    """tiling imports pandas where it builds a plan, not at its own import."""
    code = (
        "import microdiff.tiling as t, sys\n"
        "assert 'pandas' not in sys.modules\n"
        "plan = t.plan_tiles((100, 120), (64, 64), 8)\n"
        "assert type(plan).__name__ == 'DataFrame' and len(plan) == 4\n"
    )
    assert "pandas" in _loaded_after(code)


def test_classifying_without_a_label_table_opens_no_store():
    """microdiff.classify (the classify rule without labels) loads no zarr: the label images
    are opened, and zarr imported, only where a label table is staged."""
    assert "zarr" not in _loaded_after("import microdiff.classify")


def test_measuring_2d_objects_of_square_pixels_loads_no_skimage():
    """The features of 2D objects with square pixels are measured all at once (`shape`), not by
    regionprops: the job does not pay for importing scikit-image."""
    code = (
        "import numpy as np\n"
        "from microdiff import features\n"
        "lab = np.zeros((40, 40), np.int32); lab[5:15, 5:12] = 1; lab[20:30, 18:33] = 2\n"
        "img = np.arange(2 * 1600, dtype=np.uint16).reshape(2, 40, 40)\n"
        "t = features.object_table(lab, img, pixel_size=0.5)\n"
        "assert len(t) == 2\n"
    )
    assert "skimage" not in _loaded_after(code)
