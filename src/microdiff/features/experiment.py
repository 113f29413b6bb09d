"""The experiment's object table: every sample's in one (rule features_experiment)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def experiment_table(paths: Iterable) -> pd.DataFrame:
    """All samples' object tables in one frame (columns missing in a sample are NaN)."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)
