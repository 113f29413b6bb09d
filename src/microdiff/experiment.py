"""Experiment-wide tables: one row per sample, and checks across samples."""

from __future__ import annotations

import json

import pandas as pd
import zarr

from .atomic import atomic_output
from .errors import InputError
from .io import ngff


def sample_table(samples: dict[str, dict]) -> pd.DataFrame:
    """One row per sample from its stores: `samples[name] = {raw, tiles, norm}` paths, and an
    optional `source` dict (a plate field's plate, well, row, column, field) that becomes columns
    after `sample` (empty for samples that are not from a plate).

    Refuses an experiment whose samples differ in channel count, naming the odd sample's file.
    """
    rows = []
    for name, paths in samples.items():
        group = zarr.open_group(str(paths["raw"]), mode="r")
        arr = ngff.level0(group)
        plan = pd.read_parquet(paths["tiles"], columns=["tile", "shard"])
        with open(paths["norm"]) as fh:
            norm = json.load(fh)
        row = {"sample": name, **{k: str(v) for k, v in (paths.get("source") or {}).items()}}
        row |= {
            "axes": ngff.axis_letters(group),
            "shape": "x".join(map(str, arr.shape)),
            "dtype": str(arr.dtype),
            "channels": ",".join(ngff.channel_labels(group.attrs)),
            "pixel_size_um": ngff.level0_scale(group)["x"],
            "megapixels": round(arr.size / arr.shape[0] / 1e6, 3),
            "tiles": len(plan),
            "shards": int(plan["shard"].nunique()),
        }
        for c, ch in enumerate(norm["channels"]):
            row[f"ch{c}_low"], row[f"ch{c}_high"] = ch["low"], ch["high"]
        rows.append(row)
    df = pd.DataFrame(rows)
    n_ch = df["channels"].str.count(",") + 1
    if n_ch.nunique() > 1:
        first, odd = df.iloc[0], df[n_ch != n_ch.iloc[0]].iloc[0]
        raise InputError(
            samples[odd["sample"]]["raw"],
            f"sample {odd['sample']} has channels [{odd['channels']}] but {first['sample']} has "
            f"[{first['channels']}]: all samples of an experiment must have the same channels",
        )
    return df


def write_tsv(df: pd.DataFrame, path) -> None:
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
