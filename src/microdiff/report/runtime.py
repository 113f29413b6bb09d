"""The runtime figure: wall time per rule, from the benchmark files of every job that ran."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .common import plt, plural

COLUMNS = ["rule", "jobs", "total_s", "max_s", "max_rss_mb"]


def runtime_table(paths: Sequence, running: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Snakemake benchmark files `benchmarks/{rule}/{job}.tsv` -> per rule: `jobs`,
    `total_s`, `max_s`, `max_rss_mb`, sorted by total time. `running` adds jobs that have no
    benchmark file yet (rule -> seconds so far: the job drawing the figure)."""
    rows = []
    for p in paths:
        p = Path(p)
        b = pd.read_csv(p, sep="\t")
        if b.empty:
            continue
        rss = pd.to_numeric(b.get("max_rss", pd.Series([np.nan])), errors="coerce")
        rows.append({"rule": p.parent.name, "s": float(b["s"].iloc[0]), "rss": rss.iloc[0]})
    for rule, s in (running or {}).items():
        rows.append({"rule": rule, "s": float(s), "rss": np.nan})
    df = pd.DataFrame(rows, columns=["rule", "s", "rss"])
    out = df.groupby("rule").agg(
        jobs=("s", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("rss", "max")
    )
    return out.sort_values("total_s", ascending=False).reset_index()[COLUMNS]


def runtime_figure(table: pd.DataFrame):
    """Horizontal bars of the wall time per rule (all its jobs), each labelled with its time and
    job count inside the plot: in the bar when it is long enough, else just after it."""
    n = max(len(table), 1)
    fig, ax = plt.subplots(figsize=(7, 0.32 * n + 1.2))
    ax.barh(table["rule"], table["total_s"], color="#4c78a8")
    top = float(table["total_s"].max()) if len(table) else 1.0
    top = top if top > 0 else 1.0
    for i, (s, jobs) in enumerate(zip(table["total_s"], table["jobs"])):
        text = f"{s:.1f} s ({plural(int(jobs), 'job')})"
        if s > 0.55 * top:  # long bar: the label goes inside it, right-aligned
            ax.text(s - 0.01 * top, i, text, va="center", ha="right", fontsize=8, color="white")
        else:
            ax.text(s + 0.01 * top, i, text, va="center", ha="left", fontsize=8)
    ax.set_xlim(0, top * 1.02)
    ax.set_ylim(n - 0.5, -0.5)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("wall time, all jobs of the rule (s)")
    ax.set_title(f"{plural(len(table), 'rule')}, {plural(int(table['jobs'].sum()), 'job')}",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig
