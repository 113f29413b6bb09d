"""The geometry of a simulated cell culture: where the objects sit, the nuclei's fluorophore
density and labels, the cells grown around them and their cytoplasm's fluorophore density.

Every function takes the sample's random generator and draws from it in a fixed order:
`simulate_image` calls them in the order that makes a sample reproducible from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

from .optics import band_noise, points, smooth_field

CYTO_SPREAD = 0.4  # log-normal std of a cell's cytoplasm brightness
DIM = 0.4  # brightness factor of the dimmest cells (a standard normal draw below -1: 16%)


@dataclass
class Layout:
    """Per-object draws of the placed objects (index i is object id i + 1)."""

    cls: np.ndarray  # class index into the phenotypes
    long: np.ndarray  # nuclear semi-axes (pixels)
    short: np.ndarray
    centers: np.ndarray  # (n, 2) y, x or (n, 3) z, y, x
    theta: np.ndarray  # orientation of the long axis
    bright: np.ndarray  # nuclear brightness factor
    harm: np.ndarray  # (n, 3) amplitudes of the outline's waves
    phase: np.ndarray  # (n, 3) their phases
    depth: np.ndarray | None  # nuclear semi-axis in z (z pixels), 3D only


def rotate(dy, dx, theta) -> tuple:
    """(u, v): offsets along and across an axis at angle `theta` (radians, from x towards y)."""
    ct, st = math.cos(theta), math.sin(theta)
    return dx * ct + dy * st, dy * ct - dx * st


def place(rng, n, yx, rmax, pairs=0.15, tries=40):
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


def draw_layout(rng, kinds, p, n_cells, shape, size, zs) -> Layout:
    """Each object's class (drawn from fractions `p`), size, position, orientation, brightness
    and outline. In 3D the nuclei sit in a monolayer in the middle of the stack."""
    cls = rng.choice(len(kinds), size=n_cells, p=p)
    jit = rng.lognormal(0, 0.1, n_cells)
    long = np.array([kinds[c].axes[0] for c in cls]) * size * jit
    short = np.array([kinds[c].axes[1] for c in cls]) * size * jit
    short *= rng.lognormal(0, 0.06, n_cells)
    short = np.minimum(short, long)
    rmax = long * 1.12
    centers, keep = place(rng, n_cells, shape[-2:], rmax)
    cls, long, short = cls[keep], long[keep], short[keep]
    n = len(keep)
    theta = rng.uniform(0, math.pi, n)
    bright = np.array([kinds[c].intensity for c in cls]) * rng.lognormal(0, 0.12, n)
    harm = rng.normal(0, 0.035, (n, 3))
    phase = rng.uniform(0, 2 * math.pi, (n, 3))
    depth = None
    if len(shape) == 3:
        zc = shape[0] / 2 + rng.normal(0, 0.04 * shape[0], n)
        depth = 0.6 * short / zs  # nuclei are flattened ellipsoids, in z pixels
        centers = np.column_stack([zc, centers])
    return Layout(cls, long, short, centers, theta, bright, harm, phase, depth)


def _box(center, half, shape):
    lo = [max(0, int(math.floor(c - h))) for c, h in zip(center, half)]
    hi = [min(n, int(math.ceil(c + h)) + 1) for c, h, n in zip(center, half, shape)]
    return tuple(slice(a, b) for a, b in zip(lo, hi)), lo, hi


def draw_nuclei(rng, lay: Layout, kinds, shape, zs) -> tuple[np.ndarray, np.ndarray]:
    """(fluorophore density, labels) of the nuclei: wavy ellipses (ellipsoids) with texture and
    chromocentre spots; later-drawn nuclei own overlapping pixels."""
    three = len(shape) == 3
    long, short, centers, depth = lay.long, lay.short, lay.centers, lay.depth
    fine = band_noise(rng, shape, 0.7, 2.5, zs)
    nuc = np.zeros(shape, np.float32)
    lab = np.zeros(shape, np.int32)
    spots = []
    for i in range(len(lay.cls)):
        kind = kinds[lay.cls[i]]
        half = [long[i] * 1.2 + 2] * 2
        if three:
            half = [depth[i] * 1.2 + 2, *half]
        box, lo, hi = _box(centers[i], half, shape)
        if any(b <= a for a, b in zip(lo, hi)):
            continue
        grids = np.ogrid[box]
        d = [g - c for g, c in zip(grids, centers[i])]
        u, v = rotate(d[-2], d[-1], lay.theta[i])
        r2 = (u / long[i]) ** 2 + (v / short[i]) ** 2
        if three:
            r2 = r2 + (d[0] / depth[i]) ** 2
        phi = np.arctan2(v, u)
        harm, phase = lay.harm[i], lay.phase[i]
        wave = 1 + sum(harm[j] * np.cos((j + 2) * phi + phase[j]) for j in range(3))
        rho = np.sqrt(r2) / wave
        edge = np.clip((1 - rho) * short[i] + 0.5, 0, 1)
        thick = np.sqrt(np.clip(1 - rho**2, 0, 1))
        val = lay.bright[i] * edge * (0.55 + 0.45 * thick) * (1 + kind.texture * fine[box])
        nuc[box] += np.maximum(val, 0)
        lab[box][rho < 1] = i + 1
        m = rng.poisson(kind.spots)
        if m:
            spots.append(_spots(rng, lay, i, m))
    nuc += points(spots, shape, 0.9, zs)
    return nuc, lab


def _spots(rng, lay: Layout, i: int, m: int):
    """(positions, amplitudes) of `m` chromocentre spots inside nucleus i."""
    ct, st = math.cos(lay.theta[i]), math.sin(lay.theta[i])
    center = lay.centers[i]
    rr = np.sqrt(rng.uniform(0, 1, m)) * 0.7
    aa = rng.uniform(0, 2 * math.pi, m)
    su, sv = rr * lay.long[i] * np.cos(aa), rr * lay.short[i] * np.sin(aa)
    pos = [center[-2] + su * st + sv * ct, center[-1] + su * ct - sv * st]
    if lay.depth is not None:
        pos = [center[0] + rng.uniform(-0.6, 0.6, m) * lay.depth[i], *pos]
    amp = lay.bright[i] * rng.uniform(0.8, 1.6, m)
    return np.round(pos).astype(int), amp


def grow_cells(rng, lab, lay: Layout, kinds, size, zs):
    """(cells, reach, dist, limit): cell labels grown from the nuclei `lab`, each cell's reach
    (index = id), each pixel's distance to its owner's nucleus and the owner's wavy reach there.

    Each pixel goes to the nucleus it is nearest to in units of that cell's reach (so a wide
    cell pushes the seam into a narrow neighbour's side: not the Voronoi line a nearest-nucleus
    growth draws), up to a wavy per-cell reach; a cell keeps only the piece holding its nucleus.
    """
    n = len(lay.cls)
    three = lab.ndim == 3
    reach = np.zeros(n + 1, np.float32)
    reach[1:] = [kinds[c].reach * size for c in lay.cls]
    reach[1:] *= rng.lognormal(0, 0.3, n)
    sampling = (zs * 2.5, 1, 1) if three else None  # flat cells in 3D
    wavy = np.maximum(1 + 0.3 * smooth_field(rng, lab.shape, max(4, int(12 * size))), 0.3)
    near, dist = _territories(lab, reach, float(wavy.max()), sampling)
    limit = reach[near] * wavy
    out = np.where((dist <= limit) | (lab > 0), near, 0).astype(np.int32)
    del near
    comp = measure.label(out, background=0, connectivity=1)
    own = np.zeros(comp.max() + 1, bool)
    own[comp[lab > 0]] = True  # keep only the piece of each cell that holds its nucleus
    out[~own[comp]] = 0
    return out, reach, dist, limit


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


def cytoplasm(rng, cell, lab, lay: Layout, kinds, reach, dist, limit, tex, zs) -> np.ndarray:
    """Fluorophore density of the cytoplasm: per-cell brightness (touching cells differ, the
    dimmest sixth are dimmer still: cells a threshold on the cytoplasm loses), fading towards the
    cell's edge, textured by `tex`, mostly excluded from the nucleus, faint seams where cells
    touch, plus puncta."""
    n = len(lay.cls)
    level = np.zeros(n + 1, np.float32)
    level[1:] = [kinds[c].cyto for c in lay.cls]
    z = rng.standard_normal(n)
    level[1:] *= np.exp(CYTO_SPREAD * z) * np.where(z < -1.0, DIM, 1.0)
    frac = np.clip(dist / np.maximum(limit, 1e-3), 0, 1)
    dens = level[cell] * (1 - 0.45 * frac).astype(np.float32) * (1 + 0.15 * tex)
    dens[lab > 0] *= 0.25  # the dye is mostly excluded from the nucleus
    dens[_borders(cell)] *= 0.75  # faint seams where cells touch
    dens += _puncta(rng, cell, lab, lay, kinds, reach, zs)
    return dens


def _puncta(rng, cell, lab, lay: Layout, kinds, reach, zs) -> np.ndarray:
    """Cytoplasmic puncta (vesicles) for classes that have them, kept inside their own cell."""
    cls, centers, shape = lay.cls, lay.centers, lab.shape
    n = len(cls)
    counts = rng.poisson([kinds[c].puncta for c in cls]) if n else np.zeros(0, int)
    owner = np.repeat(np.arange(n), counts)
    if owner.size == 0:
        return np.zeros(shape, np.float32)
    r = rng.uniform(0.3, 1.0, owner.size) * (lay.long[owner] + reach[owner + 1])
    a = rng.uniform(0, 2 * math.pi, owner.size)
    pos = [centers[owner, -2] + r * np.sin(a), centers[owner, -1] + r * np.cos(a)]
    if len(shape) == 3:
        pos = [centers[owner, 0] + rng.normal(0, 1.0, owner.size) / zs * 3, *pos]
    pos = np.round(pos).astype(int)
    inside = np.all((pos >= 0) & (pos < np.array(shape)[:, None]), axis=0)
    pos, owner = pos[:, inside], owner[inside]
    keep = (cell[tuple(pos)] == owner + 1) & (lab[tuple(pos)] == 0)
    amp = rng.uniform(0.3, 0.8, keep.sum())
    return points([(pos[:, keep], amp)], shape, 1.1, zs)


def _borders(cell) -> np.ndarray:
    """Pixels of a cell that touch a different cell (not background), along Y and X."""
    out = np.zeros(cell.shape, bool)
    for ax in (-1, -2):
        a = np.moveaxis(cell, ax, 0)
        o = np.moveaxis(out, ax, 0)
        diff = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        o[1:] |= diff
        o[:-1] |= diff
    return out
