"""Simulated blood smears with ground truth: RGB images of stained red cells on a bright
background, for tests and the smear example (no data from anywhere needed).

A cell is a dark pink disc or ellipse (a little blur, a soft rim); classes differ as the
common red-cell shapes do: "normal" discs with a pale centre, small dense "spherocyte"s without
one, and elongated "elliptocyte"s. Cells are placed apart, some just touching. Camera: Gaussian
noise on 8-bit RGB. `write_smear_experiment` writes JPEGs, label truth, a sample sheet and a
points table (one point per cell at its centre, with its class) as annotators give them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .cells import rotate

BACKGROUND = np.array([236.0, 226.0, 230.0])  # bright, slightly pink field (RGB)
STAIN = np.array([196.0, 112.0, 128.0])  # a cell's colour where it is thickest


@dataclass(frozen=True)
class CellShape:
    name: str
    axes: tuple[float, float]  # semi-axes (long, short) in pixels
    pale: float  # depth of the pale centre (0: none, 1: as bright as the background)
    density: float  # stain strength (1: STAIN)


SHAPES = (
    CellShape("normal", (10.0, 9.6), 0.55, 1.0),
    CellShape("spherocyte", (7.0, 6.8), 0.0, 1.25),
    CellShape("elliptocyte", (13.0, 6.0), 0.25, 1.0),
)


def simulate_smear(shape=(256, 256), n_cells: int = 30, seed: int = 0, noise: float = 4.0):
    """(rgb (Y, X, 3) uint8, labels (Y, X) int32, table: id, class, y, x) of one smear."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    labels = np.zeros(shape, np.int32)
    absorb = np.zeros(shape, np.float32)
    rows = []
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    for _ in range(n_cells * 20):
        if len(rows) == n_cells:
            break
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        a, b = (v * float(rng.lognormal(0, 0.08)) for v in kind.axes)
        cy, cx = rng.uniform(a + 2, ny - a - 2), rng.uniform(a + 2, nx - a - 2)
        theta = rng.uniform(0, math.pi)
        u, v = rotate(yy - cy, xx - cx, theta)
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        inside = rho < 1
        grown = ndi.binary_dilation(inside, iterations=1)
        if (labels[grown] > 0).any():  # apart, at most touching
            continue
        i = len(rows) + 1
        labels[inside] = i
        thick = np.clip(1 - rho, 0, 1) ** 0.3  # a soft rim, flat inside
        pale = kind.pale * np.exp(-((rho / 0.45) ** 2))
        absorb[inside] += (kind.density * thick * (1 - pale))[inside]
        rows.append({"id": i, "class": kind.name, "y": float(cy), "x": float(cx)})
    absorb = ndi.gaussian_filter(absorb, 0.8)
    img = BACKGROUND - absorb[..., None] * (BACKGROUND - STAIN)
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), labels, pd.DataFrame(rows)


def write_smear_experiment(folder, n_samples: int = 2, shape=(256, 256), n_cells: int = 30,
                           seed: int = 0) -> dict:  # fmt: skip
    """folder/images/smearNN.jpg, truth/smearNN_cells.tif, samples.tsv (sample, path) and
    points.tsv (sample, y, x, class). Returns the paths."""
    import tifffile
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "truth").mkdir(exist_ok=True)
    sheet, points = [], []
    for i in range(n_samples):
        name = f"smear{i + 1:02d}"
        rgb, labels, table = simulate_smear(shape, n_cells, seed=seed * 1000 + i)
        Image.fromarray(rgb).save(folder / "images" / f"{name}.jpg", quality=92)
        tifffile.imwrite(folder / "truth" / f"{name}_cells.tif", labels)
        sheet.append({"sample": name, "path": f"images/{name}.jpg"})
        points.append(table.assign(sample=name)[["sample", "y", "x", "class"]])
    pd.DataFrame(sheet).to_csv(folder / "samples.tsv", sep="\t", index=False)
    pd.concat(points).to_csv(folder / "points.tsv", sep="\t", index=False)
    return {"sheet": folder / "samples.tsv", "points": folder / "points.tsv"}
