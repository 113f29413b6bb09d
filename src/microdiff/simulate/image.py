"""`simulate_image`: one simulated fluorescence sample with its ground truth (the model and its
units: the `simulate` package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .cells import cytoplasm, draw_layout, draw_nuclei, grow_cells
from .optics import camera, illumination, signal, smooth_field

CHANNELS = ("nuclei", "cytoplasm")


@dataclass(frozen=True)
class Phenotype:
    """One phenotype class. Sizes are in pixels at `size=1` (about 0.65 um pixels)."""

    name: str
    axes: tuple[float, float]  # nuclear semi-axes (long, short)
    intensity: float  # nuclear brightness (1 = `photons` at the peak)
    texture: float  # amplitude of fine nuclear texture (relative)
    spots: float  # mean number of bright chromocentre spots per nucleus
    reach: float  # how far the cytoplasm extends beyond the nucleus
    cyto: float  # cytoplasm brightness
    puncta: float  # mean number of cytoplasmic puncta per cell


PHENOTYPES = {
    "round": Phenotype("round", (8.0, 7.6), 1.0, 0.04, 0.0, 13.0, 0.35, 0.0),
    "elongated": Phenotype("elongated", (15.0, 8.0), 0.5, 0.22, 7.0, 18.0, 0.5, 25.0),
    "mitotic": Phenotype("mitotic", (6.0, 5.0), 1.7, 0.08, 0.0, 9.0, 0.25, 0.0),
}


@dataclass
class Simulation:
    """One simulated sample with its ground truth.

    noisy:   (C, [Z,] Y, X) uint16 camera counts.
    clean:   (C, [Z,] Y, X) float32, the expected value of `noisy` (same units, offset included).
    nuclei:  ([Z,] Y, X) int32 instance labels, 0 is background.
    cells:   ([Z,] Y, X) int32 instance labels; cell i contains nucleus i.
    objects: one row per object: id, class, class_name, centroid_[z,]y,x (nucleus, pixels),
             area (nuclear pixels), cell_area, intensity (nuclear brightness factor).
    channels: channel names, in the order of the C axis.
    params:  the physical parameters used (photons, gain, read_noise, offset, psf_sigma, ...).
    """

    noisy: np.ndarray
    clean: np.ndarray
    nuclei: np.ndarray
    cells: np.ndarray
    objects: pd.DataFrame
    channels: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def variance(self) -> np.ndarray:
        """Expected per-pixel variance of `noisy` around `clean` (Poisson-Gaussian)."""
        p = self.params
        return p["gain"] * (self.clean - p["offset"]) + p["read_noise"] ** 2


def phenotypes(classes) -> list[Phenotype]:
    if isinstance(classes, int):
        names = list(PHENOTYPES)[:classes]
        if classes < 1 or len(names) < classes:
            raise ValueError(f"classes must be 1..{len(PHENOTYPES)}, got {classes}")
    else:
        names = list(classes)
    out = []
    for c in names:
        if isinstance(c, Phenotype):
            out.append(c)
        elif c in PHENOTYPES:
            out.append(PHENOTYPES[c])
        else:
            raise ValueError(f"unknown phenotype {c!r}; known: {', '.join(PHENOTYPES)}")
    return out


def simulate_image(
    shape: Sequence[int] = (1024, 1024),
    n_cells: int | None = None,
    density: float = 250.0,
    classes: int | Sequence[str | Phenotype] = 2,
    fractions: Sequence[float] | None = None,
    channels: Sequence[str] = CHANNELS,
    photons: float | Sequence[float] = 30.0,
    gain: float = 2.0,
    read_noise: float = 4.0,
    offset: float = 100.0,
    psf_sigma: float | Sequence[float] | None = None,
    background: float = 0.05,
    vignetting: float = 0.3,
    size: float = 1.0,
    z_scale: float = 2.0,
    seed: int | None = 0,
) -> Simulation:
    """Simulate one fluorescence sample with ground truth.

    shape:      (Y, X) or (Z, Y, X) pixels. In 3D the cells form a monolayer in the middle of
                the stack; nuclei are ellipsoids.
    n_cells:    target number of cells; default `density` cells per 1024 x 1024 pixels (in Y, X)
                at `size=1`. Fewer are placed when the image is full.
    classes:    number of phenotype classes (taken from `PHENOTYPES` in order: round,
                elongated, mitotic) or a list of names / `Phenotype`s.
    fractions:  expected class fractions (default equal); each cell's class is drawn from them.
    channels:   names from ("nuclei", "cytoplasm"), in the order wanted; ("nuclei",) for one.
    photons:    expected photons per pixel at the peak of a bright round nucleus (one value or
                one per channel): the signal-to-noise knob.
    gain:       camera counts per photon; read_noise: Gaussian read noise std in counts;
    offset:     camera offset (counts) added to every pixel.
    psf_sigma:  Gaussian PSF std in pixels, one value or one per axis; default 1.0 in 2D and
                (3 / z_scale, 1, 1) in 3D (the axial PSF is about three times the lateral).
    background: additive background as a fraction of the peak signal (before vignetting).
    vignetting: fractional intensity drop of the illumination field at the image corners.
    size:       scale of all objects (1 = cell sizes typical at ~0.65 um pixels).
    z_scale:    z step / lateral pixel size (3D only).
    seed:       seed of the numpy Generator; the same seed gives the same sample.

    Returns a `Simulation` (see there, and the package docstring for the exact noise model).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (Y, X) or (Z, Y, X), got {shape}")
    channels = tuple(channels)
    if (
        not channels
        or any(c not in CHANNELS for c in channels)
        or len(set(channels)) < len(channels)
    ):
        raise ValueError(f"channels must be distinct names from {CHANNELS}, got {channels}")
    three = len(shape) == 3
    zs = z_scale if three else 1.0
    rng = np.random.default_rng(seed)
    kinds = phenotypes(classes)
    k = len(kinds)
    p = np.full(k, 1.0 / k) if fractions is None else np.asarray(fractions, float)
    if p.shape != (k,) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"fractions must be {k} non-negative numbers, got {fractions}")
    p = p / p.sum()
    ny, nx = shape[-2:]
    if n_cells is None:
        n_cells = max(1, round(density * ny * nx / 1024**2 / size**2))
    photons = np.broadcast_to(np.asarray(photons, float), (len(channels),))
    if psf_sigma is None:
        psf_sigma = (3.0 / zs, 1.0, 1.0) if three else 1.0

    # The random draws happen in this order; the same seed gives the same sample.
    lay = draw_layout(rng, kinds, p, n_cells, shape, size, zs)
    nuc, lab = draw_nuclei(rng, lay, kinds, shape, zs)
    cells, reach, dist, limit = grow_cells(rng, lab, lay, kinds, size, zs)
    cyto_tex = smooth_field(rng, shape, max(4, int(6 * size)))
    illum = illumination(rng, shape[-2:], vignetting)
    signals = []
    for name in channels:
        if name == "nuclei":
            dens = nuc
        else:
            dens = cytoplasm(rng, cells, lab, lay, kinds, reach, dist, limit, cyto_tex, zs)
        signals.append(signal(rng, dens, psf_sigma, background, illum))
    clean, noisy = camera(rng, signals, photons, gain, read_noise, offset)

    # Which objects survived, and their table.
    ids = np.flatnonzero(np.bincount(lab.ravel(), minlength=len(lay.cls) + 1)[1:]) + 1
    table = _table(lab, cells, ids, lay.cls, lay.bright, kinds, three)
    params = dict(
        photons=[float(x) for x in photons],
        gain=float(gain),
        read_noise=float(read_noise),
        offset=float(offset),
        psf_sigma=psf_sigma if np.isscalar(psf_sigma) else [float(x) for x in psf_sigma],
        background=float(background),
        vignetting=float(vignetting),
        size=float(size),
        z_scale=float(z_scale) if three else None,
        classes=[kd.name for kd in kinds],
        fractions=[float(x) for x in p],
        seed=seed,
    )
    return Simulation(noisy, clean, lab, cells, table, channels, params)


def _table(lab, cells, ids, cls, bright, kinds, three) -> pd.DataFrame:
    """The per-object table: id, class, class name, nuclear centroid, areas, brightness."""
    ones = np.ones(lab.shape, np.float32)
    area = ndi.sum_labels(ones, lab, ids) if len(ids) else np.zeros(0)
    carea = ndi.sum_labels(ones, cells, ids) if len(ids) else np.zeros(0)
    cen = np.array(ndi.center_of_mass(ones, lab, ids)).reshape(len(ids), lab.ndim)
    axes = ["z", "y", "x"] if three else ["y", "x"]
    t = pd.DataFrame({"id": ids.astype(np.int32)})
    t["class"] = cls[ids - 1].astype(int)
    t["class_name"] = [kinds[c].name for c in t["class"]]
    for j, a in enumerate(axes):
        t[f"centroid_{a}"] = cen[:, j]
    t["area"] = np.asarray(area, int)
    t["cell_area"] = np.asarray(carea, int)
    t["intensity"] = bright[ids - 1]
    return t
