"""A simulated experiment on disk: each sample's noisy image, its truth (clean image, labels,
object table) and a sample sheet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from ..atomic import atomic_output
from .image import Simulation, phenotypes, simulate_image


def write_sample(
    outdir: str | Path,
    name: str,
    result: Simulation,
    pixel_size: float = 0.65,
    z_step: float | None = None,
) -> Path:
    """Write one sample under `outdir`; return the path of its noisy image.

    images/{name}.ome.tif        noisy, uint16 OME-TIFF, axes CYX or CZYX, PhysicalSize in um,
                                 channel names in the OME metadata (uncompressed, so readers can
                                 memory-map regions)
    truth/{name}_clean.ome.tif   clean, float32 OME-TIFF, same metadata
    truth/{name}_nuclei.tif      int32 nuclear instance labels ([Z,] Y, X)
    truth/{name}_cells.tif       int32 cell instance labels
    truth/{name}_objects.csv     the object table (id, class, class_name, centroids, areas)

    `z_step` (um) defaults to pixel_size * the simulation's z_scale. Every file appears
    atomically.
    """
    outdir = Path(outdir)
    three = result.nuclei.ndim == 3
    meta = {
        "axes": "CZYX" if three else "CYX",
        "PhysicalSizeX": float(pixel_size),
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": float(pixel_size),
        "PhysicalSizeYUnit": "µm",
        "Channel": {"Name": list(result.channels)},
    }
    if three:
        step = z_step or pixel_size * (result.params.get("z_scale") or 1.0)
        meta.update(PhysicalSizeZ=float(step), PhysicalSizeZUnit="µm")
    image = outdir / "images" / f"{name}.ome.tif"
    with atomic_output(image) as tmp:
        tifffile.imwrite(tmp, result.noisy, ome=True, metadata=meta, photometric="minisblack")
    truth = outdir / "truth"
    with atomic_output(truth / f"{name}_clean.ome.tif") as tmp:
        tifffile.imwrite(tmp, result.clean, ome=True, metadata=meta, photometric="minisblack")
    for key in ("nuclei", "cells"):
        with atomic_output(truth / f"{name}_{key}.tif") as tmp:
            tifffile.imwrite(
                tmp, getattr(result, key).astype(np.int32), ome=False, compression="zlib"
            )
    with atomic_output(truth / f"{name}_objects.csv") as tmp:
        result.objects.to_csv(tmp, index=False)
    return image


def sample_fractions(n_samples: int, classes: int, seed: int = 0) -> np.ndarray:
    """Per-sample expected class fractions (n_samples, classes) that differ between samples.

    Two classes: the second class's share runs evenly from 0.2 to 0.8 across samples. More
    classes: Dirichlet draws (seeded). One class: all ones.
    """
    if classes == 1:
        return np.ones((n_samples, 1))
    if classes == 2:
        q = np.linspace(0.2, 0.8, n_samples) if n_samples > 1 else np.array([0.5])
        return np.column_stack([1 - q, q])
    return np.random.default_rng([seed, 7]).dirichlet(np.full(classes, 3.0), n_samples)


def write_experiment(
    outdir: str | Path,
    n_samples: int = 3,
    shape: Sequence[int] = (1024, 1024),
    seed: int = 0,
    pixel_size: float = 0.65,
    prefix: str = "sample",
    **kwargs,
) -> Path:
    """Simulate and write a whole experiment; return the path of its sample sheet.

    Samples are named {prefix}01, {prefix}02, ...; each gets its own seed (derived from `seed`
    and its index) and its own expected class mix (`sample_fractions`), so per-sample class
    fractions differ. Other keyword arguments go to `simulate_image` (photons, classes,
    channels, density, ...). Layout under `outdir`:

    samples.tsv                  sample sheet, columns: sample, path, channels (comma-separated
                                 names), pixel_size (um); path is relative to the sheet's folder
    images/{sample}.ome.tif      the noisy images (the experiment's input)
    truth/...                    clean images, labels and object tables (see `write_sample`)
    truth/classes.tsv            per sample: expected fractions and actual counts per class
    """
    outdir = Path(outdir)
    kinds = phenotypes(kwargs.get("classes", 2))
    fracs = sample_fractions(n_samples, len(kinds), seed)
    rows, summary = [], []
    for i in range(n_samples):
        name = f"{prefix}{i + 1:02d}"
        child = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        args = {"fractions": fracs[i], **kwargs}
        res = simulate_image(shape=shape, seed=child, **args)
        path = write_sample(outdir, name, res, pixel_size=pixel_size)
        rows.append(
            {
                "sample": name,
                "path": path.relative_to(outdir).as_posix(),
                "channels": ",".join(res.channels),
                "pixel_size": pixel_size,
            }
        )
        counts = res.objects["class_name"].value_counts()
        line = {"sample": name, "seed": child, "objects": len(res.objects)}
        for kd, f in zip(kinds, args["fractions"]):
            line[f"expected_{kd.name}"] = round(float(f), 4)
            line[f"n_{kd.name}"] = int(counts.get(kd.name, 0))
        summary.append(line)
    with atomic_output(outdir / "truth" / "classes.tsv") as tmp:
        pd.DataFrame(summary).to_csv(tmp, sep="\t", index=False)
    sheet = outdir / "samples.tsv"
    with atomic_output(sheet) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    return sheet
