"""Physics-based synthetic fluorescence microscopy with ground truth.

Makes the demo experiment (the default config needs no data from anywhere), test images and
benchmark data. One sample is a widefield-like image of a cell culture with a nuclear channel
(Hoechst-like) and a cytoplasmic channel, 2D (Y, X) or 3D (Z, Y, X):

- Cells grow in loose colonies. Each cell has one nucleus (an ellipse or ellipsoid with a wavy
  outline) and a cytoplasm territory grown outward from it (a reach-weighted Voronoi), so
  neighbouring cells touch. Nuclei may touch and overlap (dividing pairs are placed close on
  purpose).
- Phenotype classes differ in nuclear shape, intensity and texture (see `PHENOTYPES`): "round"
  nuclei are small, round, bright and smooth; "elongated" ones are larger, eccentric, dimmer and
  granular (bright chromocentre spots), and their cytoplasm is brighter, wider and punctate;
  "mitotic" (a third class, used when `classes=3`) are small, very bright and condensed.
- Optics and camera: fluorophore density -> Gaussian PSF blur -> plus a smooth additive
  background -> times an uneven illumination field (vignetting) -> Poisson photon noise ->
  camera gain, Gaussian read noise and offset -> rounding and clipping to uint16.

The units, exactly. Let `s` be the expected photon fraction of a pixel (about 1 inside a bright
round nucleus at the centre of the field). Then

    clean = offset + gain * photons * s                                (float32, camera counts)
    noisy = clip(round(offset + gain * Poisson(photons * s) + Normal(0, read_noise)), 0, 65535)

so `clean` is the mean of infinitely many noisy frames (up to rounding and clipping) and
`Var(noisy - clean) = gain * (clean - offset) + read_noise**2` (+ 1/12 from rounding).
`photons` is the peak photon count per pixel, `gain` counts per photon, `read_noise` and
`offset` are in counts.

Labels: object ids run 1..N in drawing order; where nuclei overlap, the later-drawn one (the
higher id) owns the shared pixels, while the fluorescence of both adds up there, as it does in a
real widefield image. Cell `i` contains nucleus `i` (same id); a nucleus completely covered by a
later one is dropped from the labels and the table. Cells are the pixels nearest to their
nucleus in units of each cell's reach (wide cells push into narrow neighbours), up to a wavy
per-cell reach. Cytoplasm brightness varies from cell to cell (touching cells differ) and a sixth
of the cells are dim.

`write_experiment` writes images, truth and a sample sheet; see its docstring for the layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi
from skimage import measure

from .atomic import atomic_output

CHANNELS = ("nuclei", "cytoplasm")
CYTO_SPREAD = 0.4  # log-normal std of a cell's cytoplasm brightness
DIM = 0.4  # brightness factor of the dimmest cells (a standard normal draw below -1: 16%)


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


def _field(rng, shape, coarse: int) -> np.ndarray:
    """A smooth random field with unit standard deviation and features about `coarse` px wide.

    Random weights on a grid with spacing `coarse`, spread by a separable Gaussian kernel: one
    small matrix product per axis, so it costs a few operations per pixel in 2D and 3D.
    """
    out = rng.standard_normal([math.ceil(n / coarse) + 4 for n in shape]).astype(np.float32)
    for ax, n in enumerate(shape):
        grid = (np.arange(out.shape[ax]) - 2) * coarse
        x = np.arange(n)
        w = np.exp(-(((x[:, None] - grid[None, :]) / coarse) ** 2)).astype(np.float32)
        out = np.moveaxis(np.tensordot(w, np.moveaxis(out, ax, 0), axes=1), 0, ax)
    return (out - out.mean()) / (out.std() + 1e-6)


def _texture(rng, shape, sigma, wide, zs) -> np.ndarray:
    """Band-pass noise (between `sigma` and `wide` pixels) with unit standard deviation."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    lo = [sigma / zs] + [sigma] * 2 if len(shape) == 3 else sigma
    hi = [wide / zs] + [wide] * 2 if len(shape) == 3 else wide
    out = ndi.gaussian_filter(noise, lo) - ndi.gaussian_filter(noise, hi)
    return out / (out.std() + 1e-6)


def _place(rng, n, yx, rmax, pairs=0.15, tries=40):
    """Centres (n, 2) in a loose colony pattern; some placed as touching pairs.

    Two nuclei keep their centres at least 0.75 * (rmax_i + rmax_j) apart, so nuclei may touch
    and overlap, but never cover each other much. Returns the centres and the indices of the
    objects placed (fewer than n when the image is full).
    """
    ny, nx = yx
    cols = rng.uniform((0, 0), (ny, nx), size=(max(1, round(n / 20)), 2))
    spread = 0.08 * math.sqrt(ny * nx)
    out = np.zeros((n, 2))
    rad = np.zeros(n)
    placed = []
    k = 0
    for i in range(n):
        for _ in range(tries):
            if k and rng.random() < pairs:
                j = rng.integers(k)
                ang = rng.uniform(0, 2 * math.pi)
                d = rng.uniform(0.75, 1.0) * (rmax[i] + rad[j])
                c = out[j] + d * np.array([math.sin(ang), math.cos(ang)])
            elif rng.random() < 0.25:
                c = rng.uniform((0, 0), (ny, nx))
            else:
                c = cols[rng.integers(len(cols))] + rng.normal(0, spread, 2)
            if not (0 <= c[0] < ny and 0 <= c[1] < nx):
                continue
            dist = np.hypot(*(out[:k] - c).T)
            if np.all(dist >= 0.75 * (rad[:k] + rmax[i]) - 1e-9):
                out[k], rad[k] = c, rmax[i]
                placed.append(i)
                k += 1
                break
    return out[:k], np.array(placed, int)


def _box(center, half, shape):
    lo = [max(0, int(math.floor(c - h))) for c, h in zip(center, half)]
    hi = [min(n, int(math.ceil(c + h)) + 1) for c, h, n in zip(center, half, shape)]
    return tuple(slice(a, b) for a, b in zip(lo, hi)), lo, hi


def _classes(classes) -> list[Phenotype]:
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

    Returns a `Simulation` (see there, and the module docstring for the exact noise model).
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
    kinds = _classes(classes)
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

    # Objects: class, size, orientation, brightness, outline, then positions.
    cls = rng.choice(k, size=n_cells, p=p)
    jit = rng.lognormal(0, 0.1, n_cells)
    long = np.array([kinds[c].axes[0] for c in cls]) * size * jit
    short = np.array([kinds[c].axes[1] for c in cls]) * size * jit
    short *= rng.lognormal(0, 0.06, n_cells)
    short = np.minimum(short, long)
    rmax = long * 1.12
    centers, keep = _place(rng, n_cells, (ny, nx), rmax)
    cls, long, short = cls[keep], long[keep], short[keep]
    n = len(keep)
    theta = rng.uniform(0, math.pi, n)
    bright = np.array([kinds[c].intensity for c in cls]) * rng.lognormal(0, 0.12, n)
    harm = rng.normal(0, 0.035, (n, 3))
    phase = rng.uniform(0, 2 * math.pi, (n, 3))
    if three:
        zc = shape[0] / 2 + rng.normal(0, 0.04 * shape[0], n)
        depth = 0.6 * short / zs  # nuclei are flattened ellipsoids, in z pixels
        centers = np.column_stack([zc, centers])

    # Nuclear fluorophore density and labels; later-drawn nuclei own overlapping pixels.
    fine = _texture(rng, shape, 0.7, 2.5, zs)
    nuc = np.zeros(shape, np.float32)
    lab = np.zeros(shape, np.int32)
    spots = []
    for i in range(n):
        kind = kinds[cls[i]]
        half = [long[i] * 1.2 + 2] * 2
        if three:
            half = [depth[i] * 1.2 + 2, *half]
        box, lo, hi = _box(centers[i], half, shape)
        if any(b <= a for a, b in zip(lo, hi)):
            continue
        grids = np.ogrid[box]
        d = [g - c for g, c in zip(grids, centers[i])]
        dy, dx = d[-2], d[-1]
        ct, st = math.cos(theta[i]), math.sin(theta[i])
        u = dx * ct + dy * st
        v = dy * ct - dx * st
        r2 = (u / long[i]) ** 2 + (v / short[i]) ** 2
        if three:
            r2 = r2 + (d[0] / depth[i]) ** 2
        phi = np.arctan2(v, u)
        wave = 1 + sum(harm[i, j] * np.cos((j + 2) * phi + phase[i, j]) for j in range(3))
        rho = np.sqrt(r2) / wave
        edge = np.clip((1 - rho) * short[i] + 0.5, 0, 1)
        thick = np.sqrt(np.clip(1 - rho**2, 0, 1))
        val = bright[i] * edge * (0.55 + 0.45 * thick) * (1 + kind.texture * fine[box])
        nuc[box] += np.maximum(val, 0)
        lab[box][rho < 1] = i + 1
        m = rng.poisson(kind.spots)
        if m:
            rr = np.sqrt(rng.uniform(0, 1, m)) * 0.7
            aa = rng.uniform(0, 2 * math.pi, m)
            su, sv = rr * long[i] * np.cos(aa), rr * short[i] * np.sin(aa)
            pos = [centers[i][-2] + su * st + sv * ct, centers[i][-1] + su * ct - sv * st]
            if three:
                pos = [centers[i][0] + rng.uniform(-0.6, 0.6, m) * depth[i], *pos]
            amp = bright[i] * rng.uniform(0.8, 1.6, m)
            spots.append((np.round(pos).astype(int), amp))
    nuc += _points(spots, shape, 0.9, zs)

    # Cells: each pixel goes to the nucleus it is nearest to in units of that cell's reach
    # (so a wide cell pushes the seam into a narrow neighbour's side: not the Voronoi line
    # a nearest-nucleus growth draws), up to a wavy per-cell reach.
    reach = np.zeros(n + 1, np.float32)
    reach[1:] = [kinds[c].reach * size for c in cls]
    reach[1:] *= rng.lognormal(0, 0.3, n)
    sampling = (zs * 2.5, 1, 1) if three else None  # flat cells in 3D
    wavy = np.maximum(1 + 0.3 * _field(rng, shape, max(4, int(12 * size))), 0.3)
    near, dist = _territories(lab, reach, float(wavy.max()), sampling)
    limit = reach[near] * wavy
    cells = np.where((dist <= limit) | (lab > 0), near, 0).astype(np.int32)
    del near
    comp = measure.label(cells, background=0, connectivity=1)
    own = np.zeros(comp.max() + 1, bool)
    own[comp[lab > 0]] = True  # keep only the piece of each cell that holds its nucleus
    cells[~own[comp]] = 0
    del comp
    cyto_tex = _field(rng, shape, max(4, int(6 * size)))

    # Which objects survived, and their table.
    ids = np.flatnonzero(np.bincount(lab.ravel(), minlength=n + 1)[1:]) + 1
    table = _table(lab, cells, ids, cls, bright, kinds, three)

    # Channels: fluorophore density -> PSF -> + background -> x illumination.
    illum = _illumination(rng, shape[-2:], vignetting)
    sig = []
    for name in channels:
        if name == "nuclei":
            dens = nuc
        else:
            level = np.zeros(n + 1, np.float32)
            level[1:] = [kinds[c].cyto for c in cls]
            # touching cells differ in brightness (log-normal spread), and the dimmest
            # sixth are dimmer still: cells a threshold on the cytoplasm loses
            z = rng.standard_normal(n)
            level[1:] *= np.exp(CYTO_SPREAD * z) * np.where(z < -1.0, DIM, 1.0)
            frac = np.clip(dist / np.maximum(limit, 1e-3), 0, 1)
            dens = level[cells] * (1 - 0.45 * frac).astype(np.float32) * (1 + 0.15 * cyto_tex)
            dens[lab > 0] *= 0.25  # the dye is mostly excluded from the nucleus
            dens[_borders(cells)] *= 0.75  # faint seams where cells touch
            dens += _puncta(rng, cells, lab, centers, long, reach, cls, kinds, shape, zs)
        blurred = ndi.gaussian_filter(dens, psf_sigma, mode="nearest", truncate=3.0)
        back = background * (1 + 0.3 * _field(rng, shape[-2:], max(ny, nx) // 4))
        sig.append(np.maximum((blurred + back) * illum, 0).astype(np.float32))

    clean = np.empty((len(channels), *shape), np.float32)
    noisy = np.empty((len(channels), *shape), np.uint16)
    for c, s in enumerate(sig):
        lam = photons[c] * s
        clean[c] = offset + gain * lam
        counts = offset + gain * rng.poisson(lam) + rng.normal(0, read_noise, shape)
        noisy[c] = np.clip(np.rint(counts), 0, 65535)
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


def _territories(lab, reach, wavy_max, sampling):
    """(owner, distance to the owner's nucleus) per pixel: the nucleus with the least distance
    in units of its cell's reach, among those whose reach (times `wavy_max`) gets there; owner
    0 and distance inf where none does. One distance transform per nucleus, in its box."""
    shape = lab.shape
    best = np.full(shape, np.inf, np.float32)
    owner = np.zeros(shape, np.int32)
    dist = np.full(shape, np.inf, np.float32)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        m = int(math.ceil(reach[i] * wavy_max)) + 1
        box = tuple(
            slice(0, n) if len(shape) == 3 and ax == 0 else slice(max(0, s.start - m), s.stop + m)
            for ax, (s, n) in enumerate(zip(sl, shape))
        )
        d = ndi.distance_transform_edt(lab[box] != i, sampling=sampling).astype(np.float32)
        score = d / max(float(reach[i]), 1e-3)
        win = score < best[box]
        best[box][win] = score[win]
        owner[box][win] = i
        dist[box][win] = d[win]
    return owner, dist


def _points(items, shape, sigma, zs) -> np.ndarray:
    """Render point sources (positions, amplitudes) as Gaussian spots with the given peak."""
    img = np.zeros(shape, np.float32)
    if not items:
        return img
    pos = np.concatenate([p for p, _ in items], axis=1)
    amp = np.concatenate([a for _, a in items]).astype(np.float32)
    inside = np.all((pos >= 0) & (pos < np.array(shape)[:, None]), axis=0)
    np.add.at(img, tuple(pos[:, inside]), amp[inside])
    sig = [sigma / zs, sigma, sigma] if len(shape) == 3 else [sigma] * 2
    out = ndi.gaussian_filter(img, sig, truncate=3.0)
    return out * float(np.prod([math.sqrt(2 * math.pi) * s for s in sig]))


def _puncta(rng, cells, lab, centers, long, reach, cls, kinds, shape, zs) -> np.ndarray:
    """Cytoplasmic puncta (vesicles) for classes that have them, kept inside their own cell."""
    n = len(cls)
    counts = rng.poisson([kinds[c].puncta for c in cls]) if n else np.zeros(0, int)
    owner = np.repeat(np.arange(n), counts)
    if owner.size == 0:
        return np.zeros(shape, np.float32)
    r = rng.uniform(0.3, 1.0, owner.size) * (long[owner] + reach[owner + 1])
    a = rng.uniform(0, 2 * math.pi, owner.size)
    pos = [centers[owner, -2] + r * np.sin(a), centers[owner, -1] + r * np.cos(a)]
    if len(shape) == 3:
        pos = [centers[owner, 0] + rng.normal(0, 1.0, owner.size) / zs * 3, *pos]
    pos = np.round(pos).astype(int)
    inside = np.all((pos >= 0) & (pos < np.array(shape)[:, None]), axis=0)
    pos, owner = pos[:, inside], owner[inside]
    keep = (cells[tuple(pos)] == owner + 1) & (lab[tuple(pos)] == 0)
    amp = rng.uniform(0.3, 0.8, keep.sum())
    return _points([(pos[:, keep], amp)], shape, 1.1, zs)


def _borders(cells) -> np.ndarray:
    """Pixels of a cell that touch a different cell (not background), along Y and X."""
    out = np.zeros(cells.shape, bool)
    for ax in (-1, -2):
        a = np.moveaxis(cells, ax, 0)
        o = np.moveaxis(out, ax, 0)
        diff = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        o[1:] |= diff
        o[:-1] |= diff
    return out


def _illumination(rng, yx, vignetting) -> np.ndarray:
    """Smooth uneven illumination: an off-centre radial fall-off times a gentle random field."""
    ny, nx = yx
    cy, cx = rng.normal((ny / 2, nx / 2), (0.1 * ny, 0.1 * nx))
    y = (np.arange(ny, dtype=np.float32)[:, None] - cy) / (ny / 2)
    x = (np.arange(nx, dtype=np.float32)[None, :] - cx) / (nx / 2)
    fall = 1 - vignetting * (y**2 + x**2) / 2
    wob = 1 + 0.05 * _field(rng, yx, max(ny, nx) // 3)
    return np.clip(fall * wob, 0.05, None).astype(np.float32)


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
    kinds = _classes(kwargs.get("classes", 2))
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
