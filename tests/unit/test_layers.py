"""The package's layering, read from its source: stage packages import no sibling stage, the
engine (`diffusion`) and `io` import no stage, `tiling` imports nothing of the package, and no
module knows the workflow's layout."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "microdiff"
STAGES = {"restore", "segment", "generate", "classify", "features"}
HIGHER = STAGES | {"report"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            name, package = ".".join(parts[:-1]), ".".join(parts[:-1])
        else:
            name, package = ".".join(parts), ".".join(parts[:-1])
        yield path, name, package


def _imported(tree: ast.AST, package: str) -> set[str]:
    """Every module name an import in `tree` refers to (lazy imports in functions included)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            if node.module:
                out.add(base)
            else:  # `from . import x`: x is a submodule
                out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _part(module: str) -> str | None:
    """The package's top-level part a module belongs to ("segment", "io", "features"...)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "microdiff" and len(parts) > 1 else None


def _edges():
    """(importing module, its part, imported module, its part) for imports within the package."""
    for path, name, package in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for target in sorted(_imported(tree, package)):
            if _part(target) and _part(target) != _part(name):
                yield name, _part(name), target, _part(target)


EDGES = list(_edges())


def _violations(rule) -> list[str]:
    return [f"{a} imports {b}" for a, pa, b, pb in EDGES if rule(pa, pb)]


def test_imports_are_found():
    parts = {(pa, pb) for _, pa, _, pb in EDGES}
    assert {("segment", "io"), ("restore", "diffusion"), ("features", "tiling")} <= parts


def test_no_stage_imports_a_sibling_stage_or_the_report():
    assert _violations(lambda pa, pb: pa in STAGES and pb in HIGHER) == []


def test_the_engine_imports_no_stage():
    assert _violations(lambda pa, pb: pa == "diffusion" and pb in HIGHER) == []


def test_io_imports_no_stage_nor_the_engine():
    assert _violations(lambda pa, pb: pa == "io" and pb in HIGHER | {"diffusion"}) == []


def test_io_reads_files_and_knows_no_sample_sheet():
    """The sample sheet (samples.py) builds on io's readers, plates and scenes, not back."""
    assert _violations(lambda pa, pb: pa == "io" and pb == "samples") == []


def test_tiling_is_the_bottom_layer():
    assert _violations(lambda pa, pb: pa == "tiling") == []


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_knows_the_workflow_layout(path):
    assert "results/" not in path.read_text(), f"{path} names a workflow path"
