"""The experiment's samples: from a sample sheet (TSV), a glob, or the built-in demo.

Validated when the workflow is parsed, so a bad sheet fails before any job runs, with a message
that names the file and the row.
"""

from __future__ import annotations

import glob as globmod
import re
from pathlib import Path

import pandas as pd

from .errors import InputError

# Sample names become path components and wildcard values: no separators, no shell specials.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
COLUMNS = ["sample", "path", "channels", "pixel_size", "axes", "scene"]
_EXTENSIONS = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr")
_EXTENSIONS += (".png", ".jpg", ".jpeg", ".nd2", ".czi", ".lif")


def _check_name(name: str, where: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InputError(
            where,
            f"sample name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit",
        )


def _finish(df: pd.DataFrame, where: str) -> pd.DataFrame:
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[COLUMNS].astype(object).where(df[COLUMNS].notna(), None)
    dup = df["sample"][df["sample"].duplicated()].tolist()
    if dup:
        rows = [i + 2 for i in df.index[df["sample"].isin(dup)]]  # +1 header, +1 one-based
        raise InputError(where, f"duplicate sample name(s) {sorted(set(dup))} on rows {rows}")
    if df.empty:
        raise InputError(where, "no samples")
    return df.set_index("sample", drop=False)


def from_sheet(sheet: str | Path, check_files: bool = True) -> pd.DataFrame:
    """Read and check a TSV sheet: sample, path[, channels, pixel_size, axes].

    Relative paths are relative to the sheet's folder.
    """
    sheet = Path(sheet)
    if not sheet.exists():
        raise InputError(sheet, "sample sheet not found")
    try:
        df = pd.read_csv(sheet, sep="\t", dtype=str, comment="#", skip_blank_lines=True)
    except Exception as err:
        raise InputError(sheet, f"not a readable TSV sample sheet ({err})") from err
    missing = {"sample", "path"} - set(df.columns)
    if missing:
        raise InputError(sheet, f"missing column(s) {sorted(missing)}; found {list(df.columns)}")
    unknown = set(df.columns) - set(COLUMNS)
    if unknown:
        raise InputError(sheet, f"unknown column(s) {sorted(unknown)}; allowed {COLUMNS}")
    for i, row in df.iterrows():
        where = f"{sheet} row {i + 2}"
        if pd.isna(row["sample"]) or pd.isna(row["path"]):
            raise InputError(where, "sample and path must not be empty")
        _check_name(str(row["sample"]).strip(), where)
        path = Path(str(row["path"]).strip())
        path = path if path.is_absolute() else sheet.parent / path
        if check_files and not path.exists():
            raise InputError(path, f"file not found (sample {row['sample']}, {where})")
        df.loc[i, "path"] = str(path)
        df.loc[i, "sample"] = str(row["sample"]).strip()
        if "pixel_size" in df.columns and not pd.isna(row.get("pixel_size")):
            try:
                if float(row["pixel_size"]) <= 0:
                    raise ValueError
            except ValueError:
                raise InputError(
                    where, f"pixel_size {row['pixel_size']!r} is not a positive number"
                ) from None
    return _finish(df, str(sheet))


def sample_name(path: str | Path) -> str:
    name = Path(str(path).rstrip("/")).name
    for ext in _EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def from_glob(pattern: str) -> pd.DataFrame:
    paths = sorted(globmod.glob(pattern))
    if not paths:
        raise InputError(pattern, "the input glob matches no files")
    df = pd.DataFrame({"sample": [sample_name(p) for p in paths], "path": paths})
    for name in df["sample"]:
        _check_name(name, pattern)
    return _finish(df, pattern)


def demo_names(n: int) -> list[str]:
    return [f"demo{i + 1:02d}" for i in range(n)]


def from_demo(demo: dict, folder: str = "data/demo") -> pd.DataFrame:
    names = demo_names(int(demo["samples"]))
    df = pd.DataFrame(
        {
            "sample": names,
            "path": [f"{folder}/images/{n}.ome.tif" for n in names],
            "channels": ",".join(demo.get("channels", ["nuclei", "cytoplasm"])),
        }
    )
    return _finish(df, "config: input.demo")


def load(inputs: dict) -> pd.DataFrame:
    """Samples from config's `input` section: exactly one of demo, sheet, glob, plate.

    A multi-scene vendor file (ND2/CZI/LIF) without a `scene` is one sample per scene; a plate's
    fields are one sample each (see `microdiff.io.plate`).
    """
    from .io import plate, vendor

    given = [k for k in ("demo", "sheet", "glob", "plate") if inputs.get(k)]
    if len(given) != 1:
        raise InputError(
            "config: input", f"set exactly one of demo, sheet, glob, plate (set: {given})"
        )
    kind = given[0]
    if kind == "demo":
        return from_demo(inputs["demo"])
    if kind == "plate":
        return plate.samples(inputs["plate"])
    df = from_sheet(inputs["sheet"]) if kind == "sheet" else from_glob(inputs["glob"])
    return vendor.expand_scenes(df)


def check_channel_counts(df: pd.DataFrame) -> None:
    """Refuse an experiment whose existing input files differ in channel count.

    Reads only headers/metadata. Files that do not exist yet (made by a rule) are skipped.
    """
    from .io.readers import open_image

    counts = {}
    for row in df.itertuples(index=False):
        if not Path(row.path).exists():
            continue
        src = open_image(row.path, row.axes, row.scene)
        counts[row.sample] = (src.shape[0], row.path)
    if len({c for c, _ in counts.values()}) > 1:
        first = next(iter(counts.values()))
        odd = next((s, p, c) for s, (c, p) in counts.items() if c != first[0])
        raise InputError(
            odd[1],
            f"has {odd[2]} channel(s) but {first[1]} has {first[0]}: all samples of an "
            "experiment must have the same channels",
        )
