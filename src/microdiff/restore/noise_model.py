"""Poisson-Gaussian noise model per channel and its variance-stabilizing transform.

Model: a raw pixel r with clean value m has Var[r] = a m + b (a: gain, photon noise; b: read
noise variance minus a times the camera offset). It is fitted per channel from the noisy images
alone, in the spirit of Foi et al. (2008, "Practical Poissonian-Gaussian noise modeling and
fitting for single-image raw-data", IEEE TIP): a high-pass residual that cancels locally linear
signal, d = (4 r - sum of the 4 neighbours) / sqrt(20), has the noise's variance; pixels are
binned by a smoothed local mean, each bin's variance is a robust (MAD) estimate, and a, b come
from an iteratively trimmed weighted least-squares line through the bins.

The generalized Anscombe transform (GAT) f(r) = (2/a) sqrt(a r + 3/8 a^2 + b) makes the noise
approximately N(0, 1) (Murtagh et al. 1995; Makitalo & Foi 2013); with a = 0 it is r / sqrt(b).
Its inverse is the asymptotically unbiased one, a (f^2/4 - 1/8) - b / a (Makitalo & Foi 2011).

Knee. With a camera offset b is negative, and a r + 3/8 a^2 + b goes below 0 for dark pixels
with a negative noise excursion; clamping it there (the usual GAT) maps them all to one value,
an atom in the data that SURE, like a quantization grid (below), lets the network game. Below
a knee the transform is continued by its tangent (strictly increasing, invertible). The knee is
where a r + 3/8 a^2 + b = 3/8 a^2 + v_dark, v_dark the noise variance measured at the darkest
local means (2nd percentile): there the slope 1 / sqrt(v_dark + 3/8 a^2) still stabilizes the
darkest pixels' noise, and pixels below it (negative noise excursions) keep that slope instead
of a steeper one (at least a^2 / 4 if v_dark is tiny).

Residual variance curve. At low photon counts (a few photons per pixel, e.g. W2S single frames)
the GAT does not stabilize: its output variance falls well below 1 in dark regions (Makitalo &
Foi 2013 discuss this regime). SURE needs the noise variance to be right (an overestimate lets
the network lower the loss without bound by a negative divergence), so after fitting a, b the
variance that remains after the GAT is measured as a function of the GAT value, with the same
high-pass residual binned by local mean, and kept as a piecewise-linear curve (`curve`: knots
(f, Var[f])). It is a property of the camera and channel, not of a tile: the denoiser uses it
as a known per-pixel (diagonal) noise covariance in training (heteroscedastic SURE).

Quantization (`step`). Camera data are integers (FMD and W2S are 8-bit). SURE assumes y has a
density; on data confined to a grid its divergence term can be gamed without bound: a network
that keeps its values at the grid points but has a negative slope there (a sawtooth at the
grid's period, which a ReLU network learns) lowers the SURE loss while the true error grows.
Measured on FMD confocal (8-bit; at a few photons the grid spacing after the GAT is as large
as the noise): PSNR 29.7 dB after 100 training steps, 22.2 after 300, 18.4 after 500. The
fix is dithering (as in the dequantization of discrete data for density models, Theis et al.
2016): when every value of a channel is a multiple of a step q, raw values get Gaussian noise
of standard deviation q / 2 (`DITHER`) before the GAT, so y has a smooth density (the grid's
ripple in it is below 1%). Gaussian rather than uniform dither: where the noise is mostly the
dither (FMD's dark background sits at one value), Stein's identity, on which SURE rests, holds
for the Gaussian part exactly and fails for a uniform one (uniform dither on FMD: 29.8 dB at
200 steps, 28.7 at 300, the loss negative). The noise model is fitted on dithered data, so its
read variance b includes the dither's q^2 / 4. The dither is drawn by global pixel position
(and channel) with a counter-based hash (`dither`), so tiled inference stays seam-free and a
pixel gets the same dither in training and inference.

Curve cap. The GAT of Poisson-Gaussian data has variance at most ~1 (it falls below 1 at low
counts; Makitalo & Foi 2013). The measured curve can exceed 1 in the darkest bins (pixels
binned by a noisy local mean; the GAT's floor where a r + 3/8 a^2 + b < 0): on the simulator
at 10 photons it read 1.7 where the true variance is 0.95, and SURE with an overestimated
variance is unbounded below. The curve is capped at `CURVE_MAX` = 1: underestimating the
variance only makes the denoiser keep more noise, overestimating it breaks training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import positional
from ..binning import bin_index
from ..kept import Kept

SQ20 = np.sqrt(20.0)
DITHER = 0.5  # dither standard deviation, in quantization steps
CURVE_MAX = 1.0  # cap of the residual variance curve (see the module docstring)
# dither draws kept for reuse (a channel of 584 x 760 costs about 7 ms); large ones are not
DITHER_SEED = 0x9E3779B9  # the dither's own seed (samplers' seeds come from sample_seed)
DITHERS = Kept(64 << 20, largest=16 << 20)


@dataclass
class NoiseModel:
    """Per-channel Poisson-Gaussian parameters: Var[r] = a[c] * E[r] + b[c] (raw units)."""

    a: list[float]
    b: list[float]
    curve: list | None = None  # per channel [f knots, Var[f] knots], or None (Var[f] = 1)
    step: list | None = None  # per channel quantization step (0: continuous), or None
    knee: list | None = None  # per channel GAT knee (a r + 3/8 a^2 + b), or None (a^2 / 4)

    def to_json(self) -> dict:
        d = {"a": [float(v) for v in self.a], "b": [float(v) for v in self.b]}
        if self.curve is not None:
            d["curve"] = [[[float(v) for v in k] for k in c] for c in self.curve]
        if self.step is not None:
            d["step"] = [float(v) for v in self.step]
        if self.knee is not None:
            d["knee"] = [float(v) for v in self.knee]
        return d

    @classmethod
    def from_json(cls, d: dict) -> NoiseModel:
        a, b = [float(v) for v in d["a"]], [float(v) for v in d["b"]]
        return cls(a, b, d.get("curve"), d.get("step"), d.get("knee"))

    def dequantize(self, r: np.ndarray, c: int, origin: Sequence[int]) -> np.ndarray:
        """Raw values of channel c dithered by the channel's quantization step (unchanged
        without one); `origin`: global coordinates of r's first element (one per axis)."""
        q = 0.0 if self.step is None else float(self.step[c])
        r = np.asarray(r, np.float32)
        if q <= 0:
            return r
        return r + np.float32(DITHER * q) * dither(r.shape, origin, c)

    def gat_variance(self, f: np.ndarray, c: int) -> np.ndarray:
        """Noise variance left after the GAT at GAT value(s) f (1 without a fitted curve)."""
        f = np.asarray(f, np.float32)
        if self.curve is None:
            return np.ones_like(f)
        knots, var = self.curve[c]
        return np.interp(f, knots, var).astype(np.float32)

    def _ab(self, c: int) -> tuple[float, float]:
        return float(self.a[c]), float(self.b[c])

    def _knee(self, c: int) -> float:
        a = float(self.a[c])
        return max(0.25 * a * a, float(self.knee[c]) if self.knee is not None else 0.0)

    def forward(self, r: np.ndarray, c: int) -> np.ndarray:
        """GAT of raw values of channel c: noise becomes ~N(0, 1). Below the knee (module
        docstring) the square root is continued by its tangent: no floor, no atom."""
        a, b = self._ab(c)
        r = np.asarray(r, np.float32)
        if a <= 0:
            return r / np.float32(np.sqrt(max(b, 1e-12)))
        arg = a * r + 0.375 * a * a + b
        k = self._knee(c)
        lin = 2.0 * np.sqrt(k) / a + (arg - k) / (a * np.sqrt(k))
        return np.where(arg >= k, (2.0 / a) * np.sqrt(np.maximum(arg, k)), lin).astype(np.float32)

    def inverse(self, f: np.ndarray, c: int) -> np.ndarray:
        """Raw values from GAT values (asymptotically unbiased inverse; linear below the
        knee, continuous with it)."""
        a, b = self._ab(c)
        f = np.asarray(f, np.float32)
        if a <= 0:
            return f * np.float32(np.sqrt(max(b, 1e-12)))
        k = self._knee(c)
        f0 = 2.0 * np.sqrt(k) / a
        arg = np.where(f >= f0, (a * f / 2.0) ** 2, k + (f - f0) * a * np.sqrt(k))
        return ((arg - 0.375 * a * a - b) / a + a / 4.0).astype(np.float32)

    def inverse_slope(self, f: np.ndarray, c: int) -> np.ndarray:
        """d raw / d f at f (for mapping a standard deviation back to raw units)."""
        a, b = self._ab(c)
        f = np.asarray(f, np.float32)
        if a <= 0:
            return np.full_like(f, np.sqrt(max(b, 1e-12)))
        k = self._knee(c)
        return np.maximum(a * f / 2.0, np.sqrt(k)).astype(np.float32)


def dither(shape: Sequence[int], origin: Sequence[int], channel: int = 0) -> np.ndarray:
    """Standard normal noise of `shape`, a function of each element's global coordinates
    (origin + index) and the channel only (`microdiff.positional`): any tiling gives the same
    value at a pixel. Read-only: the draws are kept (`DITHERS`), as a batch job's images of one
    shape and tiling each draw the same."""
    if len(origin) != len(shape):
        raise ValueError(f"origin {tuple(origin)} does not match shape {tuple(shape)}")
    key = (tuple(int(n) for n in shape), tuple(int(o) for o in origin), int(channel))
    kept = DITHERS.get(key)
    if kept is not None:
        return kept
    out = positional.normals(DITHER_SEED, 0, [key[2]], [key[1]], key[0])[0, 0]
    out.setflags(write=False)
    DITHERS.put(key, out)
    return out


def quantization_step(values: np.ndarray) -> float:
    """The grid step of integer-valued data (1 for plain integers; the common divisor of the
    value differences when they are all multiples of a larger integer), 0 for other data."""
    v = np.asarray(values, np.float64).ravel()
    if v.size < 2 or v.min() == v.max() or not np.all(v == np.round(v)):
        return 0.0
    # the gcd of the sorted distinct values' steps is the gcd of every value's offset from the
    # smallest (each step is a difference of two offsets, each offset a sum of steps): no sort
    return float(max(1, np.gcd.reduce((v - v.min()).astype(np.int64))))


def residual_samples(
    image: np.ndarray, window: int = 7, ref: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(local mean, high-pass residual) of a 2D image's interior pixels, both 1D float64.

    Pixels at the value range's ends (saturated or clipped at 0; judged on `ref`, the image
    before dithering, if given) and their neighbours are left out, since clipping hides noise.
    """
    x = np.asarray(image, np.float64)
    lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    mean = ndimage.uniform_filter(x, window, mode="reflect")[1:-1, 1:-1]
    r = x if ref is None else np.asarray(ref, np.float64)
    lo, hi = r.min(), r.max()
    clipped = ndimage.maximum_filter(((r <= lo) | (r >= hi)).astype(np.uint8), 3)[1:-1, 1:-1]
    keep = clipped == 0
    return mean[keep], lap[keep] / SQ20


def _binned(mean: np.ndarray, resid: np.ndarray, bins: int):
    """(mean, resid) of the pixels in each of `bins` quantile bins of `mean`, in bin order and,
    within a bin, in their original order: one stable counting sort of the bin indices instead
    of a full-length comparison per bin."""
    edges = np.unique(np.quantile(mean, np.linspace(0, 1, bins + 1)))
    idx = bin_index(mean, edges, np.min_scalar_type(len(edges)))
    order = np.argsort(idx, kind="stable")
    stops = np.cumsum(np.bincount(idx, minlength=len(edges) - 1))
    mean, resid = mean[order], resid[order]
    return [(mean[a:b], resid[a:b]) for a, b in zip(np.r_[0, stops[:-1]], stops)]


def fit_line(mean: np.ndarray, resid: np.ndarray, bins: int = 40) -> tuple[float, float]:
    """Fit Var = a * mean + b (a >= 0) through robust per-bin variances of the residuals."""
    if mean.size < 100:
        raise ValueError("too few pixels to fit a noise model")
    ms, vs, ws = [], [], []
    for m, d in _binned(mean, resid, bins):
        n = len(d)
        if n < 50:
            continue
        mad = np.median(np.abs(d - np.median(d))) * 1.4826
        ms.append(float(np.mean(m)))
        vs.append(float(mad**2))
        ws.append(float(n))
    ms, vs, ws = np.array(ms), np.array(vs), np.array(ws)
    keep = np.ones(len(ms), bool)
    a, b = 0.0, float(np.median(vs)) if len(vs) else 1.0
    for _ in range(4):  # trimmed weighted least squares: drop bins far off the line
        if keep.sum() < 2:
            break
        a, b = np.polyfit(ms[keep], vs[keep], 1, w=np.sqrt(ws[keep]))
        res = vs - (a * ms + b)
        scale = np.median(np.abs(res[keep])) * 1.4826 + 1e-12
        keep = np.abs(res) < 3 * scale
    if a <= 0:  # no signal dependence: pure Gaussian noise
        a, b = 0.0, float(np.median(vs))
    return float(a), float(b)


def variance_curve(mean: np.ndarray, resid: np.ndarray, bins: int = 16) -> list[list[float]]:
    """Knots (bin mean, residual variance) of the residual variance against the local mean.

    The variance per bin is the mean square of the residuals after dropping those beyond 5
    robust standard deviations (edges and outliers), not a MAD: at low counts the noise is
    skewed and a MAD would misjudge its variance."""
    knots, var = [], []
    for m, d in _binned(mean, resid, bins):
        if d.size < 50:
            continue
        dev = np.abs(d - np.median(d))  # the median once, its deviations once
        robust = np.median(dev) * 1.4826 + 1e-12
        d = d[dev < 5 * robust]
        knots.append(float(np.mean(m)))
        var.append(float(np.mean(d * d)))
    if not knots:
        return [[0.0], [1.0]]
    return [knots, var]


def _planes(patches: Sequence[np.ndarray], c: int):
    for p in patches:
        planes = p[c] if p.ndim == 3 else p[c].reshape(-1, *p.shape[-2:])
        yield from [planes] if planes.ndim == 2 else planes


def fit_noise_model(
    patches: Sequence[np.ndarray],
    channels: int,
    bins: int = 40,
    window: int = 7,
    curve: bool = True,
    dequantize: bool = True,
) -> NoiseModel:
    """Fit a, b per channel from patches of layout (C, [Z,] Y, X) (any number, any sizes), and
    (with `curve`) the residual variance after the GAT as a function of the GAT value.

    Integer-valued channels (see `quantization_step`) are dithered before fitting (module
    docstring), so the model describes the dithered data the denoiser sees."""
    a_all, b_all, curves, knees = [], [], [], []
    steps = []
    for c in range(channels):
        values = np.concatenate([p.ravel() for p in _planes(patches, c)])
        steps.append(quantization_step(values) if dequantize else 0.0)
    dq = NoiseModel([0.0] * channels, [1.0] * channels, step=steps)

    dithered: dict[int, list] = {}

    def planes(c):  # (dithered, original) planes of channel c, each its own dither pattern
        if c not in dithered:  # drawn once for both passes (the line, then the curve)
            dithered[c] = [
                (dq.dequantize(plane, c, (k * 65536, 0)), plane)
                for k, plane in enumerate(_planes(patches, c))
            ]
        return dithered[c]

    for c in range(channels):
        means, resids = [], []
        for plane, ref in planes(c):
            m, d = residual_samples(plane, window, ref)
            means.append(m)
            resids.append(d)
        mean, resid = np.concatenate(means), np.concatenate(resids)
        a, b = fit_line(mean, resid, bins)
        if a == 0.0 and b <= 0:
            b = 1e-6
        a_all.append(a)
        b_all.append(b)
        dark = resid[mean <= np.quantile(mean, 0.02)]
        v_dark = (np.median(np.abs(dark - np.median(dark))) * 1.4826) ** 2 if dark.size else 0.0
        knees.append(0.375 * a * a + float(v_dark))
    step = steps if any(steps) else None
    model = NoiseModel(a_all, b_all, step=step, knee=knees)
    if not curve:
        return model
    for c in range(channels):
        means, resids = [], []
        for plane, ref in planes(c):
            m, d = residual_samples(model.forward(plane, c), 5, ref)
            means.append(m)
            resids.append(d)
        knots, var = variance_curve(np.concatenate(means), np.concatenate(resids))
        curves.append([knots, [min(v, CURVE_MAX) for v in var]])
    return NoiseModel(a_all, b_all, curves, step, knees)
