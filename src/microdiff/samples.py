"""The experiment's samples: from a sample sheet (TSV), a glob, or the built-in demo.

Validated when the workflow is parsed, so a bad sheet fails before any job runs, with a message
that names the file and the row.
"""

from __future__ import annotations

import csv
import glob as globmod
import math
import re
from pathlib import Path

import pandas as pd

from .errors import InputError

# Sample names become path components and wildcard values: no separators, no shell specials.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
COLUMNS = ["sample", "path", "channels", "pixel_size", "axes", "scene"]
_EXTENSIONS = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr")
_EXTENSIONS += (".png", ".jpg", ".jpeg", ".nd2", ".czi", ".lif")
# Folders the workflow itself writes beside the per-sample ones: a sample of that name would mix
# its outputs with the experiment's.
RESERVED = ("experiment", "report", "synthetic", "models", "logs", "benchmarks")
# A sample name ends up in file names with suffixes of up to ~40 characters plus a temporary
# tag; 100 keeps every path component well under the usual 255-byte limit.
MAX_NAME = 100


def _check_name(name: str, where: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InputError(
            where,
            f"sample name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit",
        )
    if name.lower() in RESERVED:
        raise InputError(
            where,
            f"sample name {name!r} is reserved: the workflow writes a folder {name.lower()}/ "
            f"of its own beside the samples' (reserved: {', '.join(RESERVED)})",
        )
    if len(name) > MAX_NAME:
        raise InputError(
            where, f"sample name {name[:20]!r}... is {len(name)} characters; at most {MAX_NAME}"
        )


def _finish(df: pd.DataFrame, where: str, rows: list[int] | None = None) -> pd.DataFrame:
    """Complete the columns and refuse duplicates; `rows` are the sheet's line numbers (a sheet),
    otherwise duplicates are named by their paths (a glob, a plate)."""
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[COLUMNS].astype(object).where(df[COLUMNS].notna(), None)
    dup = df["sample"][df["sample"].duplicated()].tolist()
    if dup:
        hit = df["sample"].isin(dup).to_numpy()
        if rows is not None:
            at = f"on rows {[r for r, h in zip(rows, hit) if h]}"
        else:
            at = f"from {df['path'][hit].tolist()}"
        raise InputError(where, f"duplicate sample name(s) {sorted(set(dup))} {at}")
    if df.empty:
        raise InputError(where, "no samples")
    return df.set_index("sample", drop=False)


def _read_rows(sheet: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The sheet's header, rows and their line numbers, skipping blank and '#' lines.

    Trailing empty fields (a trailing tab) are dropped; a row with more fields than the header
    is refused, naming the row, rather than shifting the columns.
    """
    try:
        with open(sheet, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(sheet, f"not a readable TSV sample sheet ({err})") from err
    kept = []
    for number, fields in enumerate(lines, start=1):
        while fields and not fields[-1].strip():
            fields = fields[:-1]
        if fields and not fields[0].lstrip().startswith("#"):
            kept.append((number, [f.strip() for f in fields]))
    if not kept:
        raise InputError(sheet, "no samples")
    (_, header), body = kept[0], kept[1:]
    for number, fields in body:
        if len(fields) > len(header):
            raise InputError(
                f"{sheet} row {number}",
                f"{len(fields)} fields but the header has {len(header)} ({header}): "
                "an extra tab or a value without a column",
            )
    rows = [fields + [""] * (len(header) - len(fields)) for _, fields in body]
    return header, rows, [number for number, _ in body]


def from_sheet(sheet: str | Path, check_files: bool = True) -> pd.DataFrame:
    """Read and check a TSV sheet: sample, path[, channels, pixel_size, axes].

    Relative paths are relative to the sheet's folder.
    """
    sheet = Path(sheet)
    if not sheet.exists():
        raise InputError(sheet, "sample sheet not found")
    header, rows, numbers = _read_rows(sheet)
    df = pd.DataFrame(rows, columns=header, dtype=object).replace("", None)
    missing = {"sample", "path"} - set(df.columns)
    if missing:
        raise InputError(sheet, f"missing column(s) {sorted(missing)}; found {list(df.columns)}")
    unknown = set(df.columns) - set(COLUMNS)
    if unknown:
        raise InputError(sheet, f"unknown column(s) {sorted(unknown)}; allowed {COLUMNS}")
    for i, row in df.iterrows():
        where = f"{sheet} row {numbers[i]}"
        if pd.isna(row["sample"]) or pd.isna(row["path"]):
            raise InputError(where, "sample and path must not be empty")
        _check_name(str(row["sample"]).strip(), where)
        path = Path(str(row["path"]).strip())
        path = path if path.is_absolute() else sheet.parent / path
        if check_files and not path.exists():
            raise InputError(path, f"file not found (sample {row['sample']}, {where})")
        df.loc[i, "path"] = str(path)
        df.loc[i, "sample"] = str(row["sample"]).strip()
        if not pd.isna(row.get("channels")):
            df.loc[i, "channels"] = ",".join(c.strip() for c in str(row["channels"]).split(","))
        if "pixel_size" in df.columns and not pd.isna(row.get("pixel_size")):
            try:
                size = float(row["pixel_size"])
                if not (math.isfinite(size) and size > 0):
                    raise ValueError
            except ValueError:
                raise InputError(
                    where, f"pixel_size {row['pixel_size']!r} is not a positive finite number"
                ) from None
    return _finish(df, str(sheet), rows=numbers)


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


def from_plate(path) -> pd.DataFrame:
    """The samples of a plate input (the sample-sheet columns plus PLATE_COLUMNS)."""
    from .io import plate

    rows = plate.fields(path)
    for r in rows:
        _check_name(r["sample"], str(path))
    df = _finish(pd.DataFrame(rows)[["sample", "path"]], f"plate {path}")
    for col in plate.PLATE_COLUMNS:
        df[col] = [r[col] for r in rows]
    return df


def expand_scenes(df):
    """One sample per scene for each multi-scene vendor file whose row names no scene.

    The scene's sample is named `{sample}_s{index}`; a file of one scene keeps its name.
    """
    from .io.vendor import is_vendor, scenes

    if not any(is_vendor(p) for p in df["path"]):
        return df
    rows = []
    for row in df.to_dict("records"):
        given = row.get("scene") not in (None, "")
        ids = scenes(row["path"]) if is_vendor(row["path"]) and not given else []
        if len(ids) <= 1:
            rows.append(row)
            continue
        for i in range(len(ids)):
            name = f"{row['sample']}_s{i}"
            _check_name(name, row["path"])
            rows.append({**row, "sample": name, "scene": str(i)})
    return _finish(pd.DataFrame(rows), "input")


def load(inputs: dict) -> pd.DataFrame:
    """Samples from config's `input` section: exactly one of demo, sheet, glob, plate.

    A multi-scene vendor file (ND2/CZI/LIF) without a `scene` is one sample per scene; a plate's
    fields are one sample each (see `microdiff.io.plate`).
    """
    given = [k for k in ("demo", "sheet", "glob", "plate") if inputs.get(k)]
    if len(given) != 1:
        raise InputError(
            "config: input", f"set exactly one of demo, sheet, glob, plate (set: {given})"
        )
    kind = given[0]
    if kind == "demo":
        return from_demo(inputs["demo"])
    if kind == "plate":
        return from_plate(inputs["plate"])
    df = from_sheet(inputs["sheet"]) if kind == "sheet" else from_glob(inputs["glob"])
    return expand_scenes(df)


def check_channel_counts(df: pd.DataFrame, demo: dict | None = None) -> dict[str, int]:
    """Refuse an experiment whose existing input files differ in channel count; return each
    sample's pixel count (z * y * x) where it is known without reading pixels.

    Reads only headers/metadata. Files that do not exist yet (made by a rule) are skipped, but
    the demo's images have the shape `demo` (config input.demo) says.
    """
    from .io.readers import open_image

    counts, pixels = {}, {}
    if demo:
        for name in df["sample"]:
            pixels[name] = math.prod(int(n) for n in demo["shape"])
    for row in df.itertuples(index=False):
        if not Path(row.path).exists():
            continue
        src = open_image(row.path, row.axes, row.scene)
        counts[row.sample] = (src.shape[0], row.path)
        pixels[row.sample] = math.prod(src.spatial_shape)
    if len({c for c, _ in counts.values()}) > 1:
        first = next(iter(counts.values()))
        odd = next((s, p, c) for s, (c, p) in counts.items() if c != first[0])
        raise InputError(
            odd[1],
            f"has {odd[2]} channel(s) but {first[1]} has {first[0]}: all samples of an "
            "experiment must have the same channels",
        )
    return pixels


def batches(
    names: list[str], pixels: dict[str, int], budget: int, largest: int
) -> dict[str, list[str]]:
    """Small samples packed into batches of at most `budget` pixels, in sheet order.

    A batch is processed by one job per stage (one process: start-up and model loading paid
    once). Samples over `largest` pixels, or of unknown size, are in no batch: their stages run
    per sample, split into shards of tiles. Packing in order keeps batches stable when samples
    are appended to the sheet (only the last batch changes). budget 0: no batches.
    """
    out: dict[str, list[str]] = {}
    if budget <= 0:
        return out
    current: list[str] = []
    size = 0
    for name in names:
        n = pixels.get(name)
        if n is None or n > largest:
            continue
        if current and size + n > budget:
            out[f"b{len(out) + 1:03d}"] = current
            current, size = [], 0
        current.append(name)
        size += n
    if current:
        out[f"b{len(out) + 1:03d}"] = current
    return out
