"""Compare what two runs of the workflow wrote, file by file.

What must be equal between two runs of the same config (locally, through SLURM, or after a
killed run was resumed), by file type:

- Zarr chunks and every other binary file (model weights, ...): byte-identical.
- TIFF: byte-identical except the random per-file `urn:uuid:` that OME-TIFF writers put in the
  OME-XML (same length, so every other byte, pixels and tags included, is compared in place).
- JSON (`*.json`, Zarr metadata `.zattrs`/`.zarray`/`.zgroup`/`zarr.json`): equal as parsed
  JSON once every `created` key (the provenance timestamp, `microdiff.provenance.record`) is
  dropped, at any depth.
- Parquet: equal tables (columns, dtypes, values) and equal schema metadata modulo `created`.
- TSV/CSV: equal text.
- PNG figures: equal pixels (matplotlib's text chunks may differ); the runtime figure plots the
  runs' own wall times and only has to exist on both sides, as does the report's configuration
  page (it records each run's own configuration and executor settings).

Compared: everything under `data/`, `models/` and `results/`. Not compared: `logs/`,
`benchmarks/` (timings), `.snakemake/`, Snakemake's `.snakemake_timestamp` markers.
Temporary siblings left by a killed writer (`.<name>.tmp-<hex>`) are never outputs; they are
reported as differences unless `ignore_stale_tmp` (a resumed run may keep a killed job's).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOTS = ("data", "models", "results")
VOLATILE_KEYS = {"created"}
JSON_NAMES = {".zattrs", ".zarray", ".zgroup", ".zmetadata", "zarr.json"}
OME_UUID = re.compile(rb"urn:uuid:[0-9a-fA-F-]{36}")
TIMING_FIGURES = re.compile(r"(^|/)runtime[^/]*\.png$")
RUN_RECORDS = re.compile(r"(^|/)report/config\.html$")
STALE_TMP = re.compile(r"(^|/)\.[^/]+\.tmp-[0-9a-f]+(/|$)")


def output_files(workdir: Path, ignore_stale_tmp: bool = False) -> list[str]:
    """Every output file under the compared roots, as paths relative to `workdir`."""
    files = []
    for root in ROOTS:
        for path in sorted((workdir / root).rglob("*")):
            rel = path.relative_to(workdir).as_posix()
            if path.is_dir() or path.name == ".snakemake_timestamp":
                continue
            if ignore_stale_tmp and STALE_TMP.search(rel):
                continue
            files.append(rel)
    return files


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def changed_keys(a, b, path: str = "") -> list[str]:
    """The key paths at which two parsed JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k} ({'added' if k not in a else 'removed'})")
            else:
                out += changed_keys(a[k], b[k], f"{path}/{k}")
        return out
    return [] if a == b else [path or "/"]


def _json_value(raw: bytes | str):
    try:
        return _strip(json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        return raw


def _parquet_diff(a: Path, b: Path) -> str | None:
    ta, tb = pq.read_table(a), pq.read_table(b)
    meta_a = {k: _json_value(v) for k, v in (ta.schema.metadata or {}).items()}
    meta_b = {k: _json_value(v) for k, v in (tb.schema.metadata or {}).items()}
    if meta_a != meta_b:
        return "parquet metadata differs"
    fa, fb = ta.to_pandas(), tb.to_pandas()
    try:
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
    except AssertionError as exc:
        return f"parquet table differs: {str(exc).splitlines()[0]}"
    return None


def _png_diff(a: Path, b: Path) -> str | None:
    import matplotlib.image as mpimg

    pa, pb = mpimg.imread(a), mpimg.imread(b)
    if pa.shape != pb.shape or not np.array_equal(pa, pb):
        return "figure pixels differ"
    return None


def file_diff(a: Path, b: Path, rel: str) -> str | None:
    """Why `a` and `b` (the same output of two runs) are not equal, or None."""
    name = Path(rel).name
    if name.endswith(".json") or name in JSON_NAMES:
        keys = changed_keys(_strip(json.loads(a.read_text())), _strip(json.loads(b.read_text())))
        return (
            f"JSON differs (beyond provenance timestamps) at {', '.join(keys[:4])}"
            if keys
            else None
        )
    if name.endswith(".parquet"):
        return _parquet_diff(a, b)
    if name.endswith(".png"):
        return None if TIMING_FIGURES.search(rel) else _png_diff(a, b)
    if RUN_RECORDS.search(rel):
        return None
    da, db = a.read_bytes(), b.read_bytes()
    if name.endswith((".tif", ".tiff")):
        da, db = OME_UUID.sub(b"urn:uuid:-", da), OME_UUID.sub(b"urn:uuid:-", db)
    return None if da == db else "bytes differ"


def compare_runs(left: Path, right: Path, ignore_stale_tmp: bool = False) -> list[str]:
    """Differences between two runs' outputs ([] when equal), one line each."""
    files_l = output_files(left, ignore_stale_tmp)
    files_r = output_files(right, ignore_stale_tmp)
    problems = [f"only in {left}: {f}" for f in sorted(set(files_l) - set(files_r))]
    problems += [f"only in {right}: {f}" for f in sorted(set(files_r) - set(files_l))]
    for rel in sorted(set(files_l) & set(files_r)):
        if why := file_diff(left / rel, right / rel, rel):
            problems.append(f"{rel}: {why}")
    return problems
