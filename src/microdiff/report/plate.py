"""The plate heat map of the report: one value per well (objects, or a class fraction)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import plt


def _column_key(c: str):
    return (0, int(c)) if str(c).isdigit() else (1, str(c))


def heatmap_figure(wells: pd.DataFrame):
    """Wells as a rows x columns grid: nuclei per well, and each class's fraction."""
    counts = [c for c in wells.columns if c.startswith("n_")]
    values = ["n_nucleus"] if "n_nucleus" in counts else counts[:1]
    values += [c for c in wells.columns if c.startswith("fraction_")]
    rows = sorted(wells["row"].astype(str).unique())
    cols = sorted(wells["column"].astype(str).unique(), key=_column_key)
    fig, axs = plt.subplots(
        1,
        len(values),
        figsize=(1.2 + 0.5 * len(cols) * len(values) + len(values), 1 + 0.5 * len(rows)),
        squeeze=False,
    )
    for ax, col in zip(axs[0], values):
        grid = np.full((len(rows), len(cols)), np.nan)
        for w in wells.itertuples(index=False):
            grid[rows.index(str(w.row)), cols.index(str(w.column))] = getattr(w, col)
        im = ax.imshow(
            grid,
            cmap="viridis",
            vmin=0 if col.startswith("n_") else 0.0,
            vmax=None if col.startswith("n_") else 1.0,
        )
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_title(col.replace("n_", "objects: ").replace("fraction_", "fraction "))
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"plate {wells['plate'].iloc[0]}")
    return fig
