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
