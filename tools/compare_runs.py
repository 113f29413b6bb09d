"""Compare two workflow result folders: are the outputs the same, timestamps aside?

    python tools/compare_runs.py BEFORE/results AFTER/results

Used to show that a refactor changed no output (issue 18): run the demo on the commit before and
the commit after with the same shipped models, then compare.

- Zarr stores: every chunk byte for byte; metadata (.zattrs, .zarray, .zgroup, zarr.json)
  as JSON with the provenance's `created` timestamps left out.
- Parquet tables: equal values, dtypes and column order (exact); their provenance blocks
  compared like zarr metadata.
- JSON and TSV files: equal (JSON without `created`).
- Pictures and pages (PNG, HTML): listed when their bytes differ, not counted as a difference
  (the runtime figure and the configuration page hold each run's own timings and times).

Prints one line per differing file and a summary; exits 1 when any output differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

VOLATILE = {"created"}
ZARR_META = {".zattrs", ".zarray", ".zgroup", "zarr.json"}
SKIP = {".snakemake_timestamp"}
PICTURES = {".png", ".html", ".jpg"}


def strip(obj):
    """`obj` without the volatile keys, at any depth."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def changed_keys(a, b, path="") -> list[str]:
    """The key paths at which two JSON values differ (`created` left out)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b) - VOLATILE):
            if k not in a or k not in b:
                out.append(f"{path}/{k} ({'added' if k not in a else 'removed'})")
            else:
                out += changed_keys(a[k], b[k], f"{path}/{k}")
        return out
    return [] if a == b else [path or "/"]


def json_diff(a, b) -> str | None:
    keys = changed_keys(strip(a), strip(b))
    return f"metadata differs at {', '.join(keys[:4])}" if keys else None


def same_parquet(a: Path, b: Path) -> str | None:
    import pyarrow.parquet as pq

    from microdiff.provenance import read_table_provenance

    why = json_diff(read_table_provenance(a), read_table_provenance(b))
    if why:
        return "provenance " + why
    if pq.read_schema(a).remove_metadata() != pq.read_schema(b).remove_metadata():
        return "schema differs"
    try:
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), check_exact=True)
    except AssertionError as err:
        return "values differ: " + str(err).splitlines()[0]
    return None


def compare_file(a: Path, b: Path) -> str | None:
    """None when `a` and `b` hold the same output, else what differs."""
    if a.name in ZARR_META or a.suffix == ".json":
        return json_diff(json.loads(a.read_text()), json.loads(b.read_text()))
    if a.suffix == ".parquet":
        return same_parquet(a, b)
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name not in SKIP}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    a = ap.parse_args(argv)
    fa, fb = files(a.before), files(a.after)
    bad = [f"only in {a.before}: {p}" for p in sorted(fa - fb)]
    bad += [f"only in {a.after}: {p}" for p in sorted(fb - fa)]
    pictures, n = [], 0
    for rel in sorted(fa & fb):
        why = compare_file(a.before / rel, a.after / rel)
        n += 1
        if why and rel.suffix in PICTURES:
            pictures.append(f"{rel}: {why}")
        elif why:
            bad.append(f"{rel}: {why}")
    for line in bad:
        print("DIFFERS", line)
    for line in pictures:
        print("picture", line)
    chunks = sum(1 for p in fa & fb if ".zarr" in str(p) and p.name not in ZARR_META)
    print(f"{n} files compared ({chunks} zarr chunks): {len(bad)} outputs differ, "
          f"{len(pictures)} pictures/pages differ (not counted)")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
