"""The report's configuration page: the run's configuration, the software versions, and the models
used, named by what they are and their hashes (never by where they were built or installed)."""

from __future__ import annotations

import html
import json
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import yaml

from .. import __version__
from ..provenance import file_hash

PACKAGES = ("snakemake", "torch", "numpy", "scipy", "scikit-image", "scikit-learn", "pandas",
            "zarr", "ome-zarr-models", "tifffile", "matplotlib")  # fmt: skip


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions (from the package metadata; nothing is imported)."""
    out = {"microdiff": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def model_record(folder, name: str, origin: str) -> dict:
    """What identifies a model checkpoint folder: its task, parameter and data hashes, the
    weights file's hash, what made it and on what; `name` and `origin` (shipped or trained in
    this run) say which it is."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    weights = next(iter(sorted(folder.glob("*.pt"))), None)
    return {
        "model": name,
        "origin": origin,
        "task": cfg.get("task", ""),
        "params_hash": cfg.get("params_hash", ""),
        "data_hash": cfg.get("data_hash") or "",
        "weights_sha256": file_hash(weights) if weights else "",
        "made_by": cfg.get("script") or cfg.get("made_by") or "",
        "trained_on": ", ".join(map(str, cfg.get("trained_on") or [])) or cfg.get("mode", ""),
    }


def shipped_models() -> list[dict]:
    from ..shipped import MODELS

    return [model_record(d, d.name, "shipped with microdiff")
            for d in sorted(MODELS.iterdir()) if (d / "config.json").is_file()]  # fmt: skip


def _table(rows: Sequence[Mapping]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in keys) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def config_page(config: Mapping, trained: Mapping[str, str] | None = None) -> str:
    """The page: the configuration as run (YAML, every section), the software versions, the
    shipped models and the models trained in this run (`trained`: name -> checkpoint folder)."""
    models = shipped_models() + [
        model_record(path, name, "trained in this run") for name, path in (trained or {}).items()
    ]
    soft = [{"package": k, "version": v} for k, v in versions().items()]
    text = yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)), sort_keys=False)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Configuration</title>
<style>body{{font-family:sans-serif;font-size:13px;margin:12px}}
table{{border-collapse:collapse;margin-bottom:12px}}td,th{{border:1px solid #ccc;padding:3px 6px;
text-align:left}}th{{background:#eee}}pre{{background:#f6f6f6;padding:8px;font-size:12px}}</style>
</head><body>
<h3>Software</h3>{_table(soft)}
<h3>Models</h3>
<p>Named by what they are and identified by their hashes (params_hash: the training
configuration; data_hash: the training data; weights_sha256: the weights file, first 16 hex
digits). Every output records the hash of the model that made it in its provenance.</p>
{_table(models)}
<h3>Configuration</h3>
<p>The configuration this run used (config.yaml with any --configfile / --config applied).
Each stage's section is passed to its rules as parameters: changing one reruns that stage
and what follows.</p>
<pre>{html.escape(text)}</pre></body></html>
"""
