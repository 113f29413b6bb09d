"""The report's text files: writing a page or table (HTML, TSV) atomically, reading JSON (no
matplotlib: a rule that writes only a page does not load it)."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_output


def write_text(text: str, path) -> None:
    """Write a text file (HTML, TSV) atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())
