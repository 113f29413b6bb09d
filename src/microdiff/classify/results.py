"""What the classify stage writes besides its predictions: per-sample and experiment class
summaries, the classes table with its provenance, and trained tabular models (joblib + sidecar)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_output
from ..provenance import file_hash, write_table


def summarize(classes: pd.DataFrame) -> pd.DataFrame:
    """Per-sample counts and fractions, long format: `sample`, [`kind`,] `class`, `count`,
    `fraction`. Every class appears for every sample (count 0 where absent); fractions sum to 1
    per sample (and kind).
    """
    by = [c for c in ("sample", "kind") if c in classes.columns]
    counts = classes.groupby([*by, "class"]).size()
    if by:
        counts = counts.unstack("class", fill_value=0).stack()
    counts = counts.rename("count").reset_index()
    total = counts.groupby(by)["count"].transform("sum") if by else counts["count"].sum()
    counts["fraction"] = counts["count"] / total
    return counts.astype({"count": np.int64})


def experiment_summary(classes: pd.DataFrame) -> pd.DataFrame:
    """One row per class (and kind): `count` and `fraction` pooled over the experiment,
    `n_samples`, and the mean and standard deviation (ddof=1) of the per-sample fractions.
    """
    per = summarize(classes)
    kind = ["kind"] if "kind" in per.columns else []
    out = per.groupby([*kind, "class"]).agg(
        count=("count", "sum"),
        n_samples=("count", "size"),
        fraction_mean=("fraction", "mean"),
        fraction_sd=("fraction", "std"),
    )
    out.insert(
        1,
        "fraction",
        out["count"] / out.groupby(kind)["count"].transform("sum")
        if kind
        else out["count"] / out["count"].sum(),
    )
    return out.reset_index()


def write_classes(path, df: pd.DataFrame, provenance: dict) -> None:
    """Write `classes.parquet` atomically with provenance in its metadata."""
    write_table(path, df, provenance)


def _sidecar(path) -> Path:
    return Path(path).with_suffix(".json")


def save_model(model, path, info: dict | None = None) -> None:
    """Save a trained classifier: joblib (a pickle) plus a JSON sidecar with its sha256.

    Pickle runs code when loaded: this is for models this project trained itself. The sidecar
    records the file hash, scikit-learn version, classes and features.
    """
    import joblib
    import sklearn

    with atomic_output(path) as tmp:
        joblib.dump(model, tmp)
    meta = {
        "sha256": file_hash(path),
        "sklearn": sklearn.__version__,
        "classes": [c.item() if hasattr(c, "item") else c for c in model.classes_],
        "features": list(model.feature_names_in_),
        **(info or {}),
    }
    with atomic_output(_sidecar(path)) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, default=str))


def load_model(path):
    """Load a model written by `save_model`, refusing a file whose hash is not the recorded one.

    Never load a model file from an untrusted source: unpickling runs code.
    """
    import joblib
    import sklearn

    meta = json.loads(_sidecar(path).read_text())
    if file_hash(path) != meta["sha256"]:
        raise ValueError(f"{path}: file hash does not match its sidecar; refusing to unpickle")
    if meta.get("sklearn") != sklearn.__version__:
        warnings.warn(
            f"{path}: saved with scikit-learn {meta.get('sklearn')}, "
            f"loading with {sklearn.__version__}",
            stacklevel=2,
        )
    return joblib.load(path)
