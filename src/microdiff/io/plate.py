"""NGFF HCS plates (plate / well / field; 0.4 and 0.5, as ome-zarr-py and Fractal write them).

In: every field of a plate becomes a sample named `{well}_{field}` (`A01_0`), its well, row,
column and field recorded. Out: per-field NGFF images and their labels laid out as a 0.4 plate,
validated with ome-zarr-models' HCS model. Per-well and per-plate summaries of object tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import zarr

from ..atomic import atomic_output
from ..errors import InputError
from . import ngff

PLATE_COLUMNS = ["plate", "well", "row", "column", "field"]


def well_name(row: str, column: str) -> str:
    """`A` + `1` -> `A01` (numeric columns zero-padded to two digits)."""
    return f"{row}{int(column):02d}" if str(column).isdigit() else f"{row}{column}"


def fields(path) -> list[dict]:
    """Every field of a plate: sample, path, plate, well, row, column, field."""
    path = str(path).rstrip("/")
    try:
        root = zarr.open_group(path, mode="r")
    except Exception as err:
        raise InputError(path, f"not a readable Zarr plate ({type(err).__name__}: {err})") from err
    plate = ngff.metadata(root.attrs).get("plate")
    if not plate or "wells" not in plate:
        raise InputError(path, "Zarr group without NGFF HCS 'plate' metadata")
    rows = [r["name"] for r in plate["rows"]]
    cols = [c["name"] for c in plate["columns"]]
    name = plate.get("name") or Path(path).name.split(".")[0]
    out = []
    for w in plate["wells"]:
        r, c = (
            (rows[w["rowIndex"]], cols[w["columnIndex"]])
            if "rowIndex" in w
            else w["path"].split("/")
        )
        try:
            well = ngff.metadata(root[w["path"]].attrs).get("well")
        except KeyError:
            raise InputError(f"{path}/{w['path']}", "well listed in the plate is missing") from None
        for image in (well or {}).get("images", []):
            out.append(
                {
                    "sample": f"{well_name(r, c)}_{image['path']}",
                    "path": f"{path}/{w['path']}/{image['path']}",
                    "plate": name,
                    "well": well_name(r, c),
                    "row": r,
                    "column": c,
                    "field": str(image["path"]),
                }
            )
    if not out:
        raise InputError(path, "plate has no fields")
    return out


def _copy_image(src, dst) -> None:
    """Copy an NGFF 0.4 image group's metadata and pyramid levels (not its other subgroups)."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True)
    for meta in (".zattrs", ".zgroup"):
        shutil.copy2(src / meta, dst / meta)
    group = zarr.open_group(str(src), mode="r")
    for level in ngff.level_paths(group):
        shutil.copytree(src / level, dst / level)


def write_plate(out, table: pd.DataFrame, name: str = "plate") -> None:
    """Lay out per-field images (column `image`) and labels (optional column `labels`: an NGFF
    image whose `labels/` group is copied) as an NGFF 0.4 plate at `out`, then validate it.

    `table` has one row per field with `row`, `column`, `field`.
    """
    rows = sorted(table["row"].astype(str).unique())
    cols = sorted(table["column"].astype(str).unique(), key=lambda c: (len(c), c))
    with atomic_output(out) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        wells = []
        for (r, c), group in table.groupby(["row", "column"], sort=True):
            r, c = str(r), str(c)
            well = root.require_group(r).require_group(c)
            images = []
            for f in group.itertuples(index=False):
                field = str(f.field)
                _copy_image(f.image, Path(tmp) / r / c / field)
                labels = getattr(f, "labels", None)
                if labels and (Path(labels) / "labels").exists():
                    shutil.copytree(Path(labels) / "labels", Path(tmp) / r / c / field / "labels")
                images.append({"path": field, "acquisition": 0})
            well.attrs["well"] = {"images": images, "version": "0.4"}
            wells.append(
                {"path": f"{r}/{c}", "rowIndex": rows.index(r), "columnIndex": cols.index(c)}
            )
        root.attrs["plate"] = {
            "name": name,
            "version": "0.4",
            "acquisitions": [{"id": 0}],
            "rows": [{"name": r} for r in rows],
            "columns": [{"name": c} for c in cols],
            "wells": wells,
            "field_count": int(table.groupby(["row", "column"]).size().max()),
        }
        validate(tmp)


def validate(path) -> None:
    """Validate a plate (0.4 or 0.5) and its wells with ome-zarr-models' HCS models."""
    group = zarr.open_group(str(path), mode="r")
    if "ome" in group.attrs:
        from ome_zarr_models.v05.hcs import HCS
    else:
        from ome_zarr_models.v04.hcs import HCS
    try:
        hcs = HCS.from_zarr(group)
        for _ in hcs.well_groups:
            pass
    except Exception as err:  # pydantic and value errors alike
        raise ValueError(f"{path}: NGFF plate metadata does not validate: {err}") from err


def summaries(
    fields_table: pd.DataFrame, objects: pd.DataFrame, counts: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-well and per-plate summaries: fields, objects per kind, class fractions.

    `fields_table`: sample + PLATE_COLUMNS; `objects`: one row per object (`sample`, `kind`);
    `counts`: `classify.summarize` output (sample, [kind,] class, count), optional.
    """
    meta = fields_table[PLATE_COLUMNS + ["sample"]].reset_index(drop=True)
    n = objects.groupby(["sample", "kind"]).size().unstack("kind", fill_value=0)
    n.columns = [f"n_{k}" for k in n.columns]
    per = meta.merge(n, left_on="sample", right_index=True, how="left").fillna(
        {c: 0 for c in n.columns}
    )
    if counts is not None and len(counts):
        c = counts.groupby(["sample", "class"])["count"].sum().unstack("class", fill_value=0)
        c.columns = [f"count_{k}" for k in c.columns]
        per = per.merge(c, left_on="sample", right_index=True, how="left").fillna(0)
    num = [col for col in per.columns if col.startswith(("n_", "count_"))]

    def agg(keys):
        g = per.groupby(keys, sort=True)
        out = g[num].sum().astype("int64")
        out.insert(0, "fields", g.size())
        cls = [col for col in num if col.startswith("count_")]
        total = out[cls].sum(axis=1).replace(0, float("nan"))
        for col in cls:
            out[f"fraction_{col[6:]}"] = out[col] / total
        return out.reset_index()

    return agg(["plate", "well", "row", "column"]), agg(["plate"])
