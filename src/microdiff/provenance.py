"""Provenance recorded in every output: version, stage, parameters, inputs' hashes, seed."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from . import __version__


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-serializable object that does not depend on key order."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 (first 16 hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def record(stage: str, params: dict | None = None, **extra: Any) -> dict:
    """The provenance block a stage writes into its output's attributes (key `microdiff`).

    `extra` holds stage facts such as `inputs`, `model_hash`, `seed`, or `method` (a stage that
    falls back to a non-diffusion method says so here).
    """
    params = dict(params or {})
    block = {
        "version": __version__,
        "stage": stage,
        "params": params,
        "params_hash": stable_hash(params),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    block.update(extra)
    return json.loads(json.dumps(block, default=str))


TABLE_KEY = b"microdiff"  # parquet schema metadata key of a table's provenance block


def write_table(path, df, provenance: dict) -> None:
    """Write a table as parquet atomically, `provenance` (a `record` block) as JSON in its schema
    metadata under `TABLE_KEY`. The one writer of every table a stage outputs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .atomic import atomic_output

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[TABLE_KEY] = json.dumps(dict(provenance), default=str).encode()
    with atomic_output(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read_table_provenance(path) -> dict:
    """The provenance block written by `write_table` ({} when there is none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[TABLE_KEY]) if TABLE_KEY in meta else {}
