"""Noise keyed by global pixel position, in numpy (no torch): the one generator behind the
samplers' noise (`diffusion.noise.PositionalNoise`, which runs the same hash in tensors on other
devices) and the restore stage's dither (`restore.noise_model.dither`).

A value depends only on (seed, counter, channel, global coordinate), never on where a tile grid
falls, so overlapping tiles drawn separately get the same value at the same pixel. Each pixel's
uint32 hash is a counter-based hash evaluated with integer array ops; the hashes become normals
by Box-Muller in float32 over pairs of pixels (x = 2q, 2q + 1 of the last axis): the pair's two
hashes are the two uniforms, its two normals (cosine, sine) the two values, so one hash and half
a logarithm per pixel. The hash runs in uint32, which wraps as the hash needs, in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

M32 = 0xFFFFFFFF
# pixels hashed and transformed per pass of `normals`: each step's arrays stay in the core's cache
# (512 KB a buffer) instead of streaming the whole draw through memory a dozen times
BLOCK = 1 << 17


def _mix_inplace(h: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """A 32-bit integer finaliser on a uint32 array, in place (products wrap modulo 2^32);
    `tmp`: a buffer of h's shape for the shifts, where the caller has one."""
    tmp = np.empty_like(h) if tmp is None else tmp
    for shift, mult in ((16, 0x7FEB352D), (15, 0x5BD1E995), (16, 0x2C1B3C6D)):
        np.right_shift(h, np.uint32(shift), out=tmp)
        h ^= tmp
        h *= np.uint32(mult)
    np.right_shift(h, np.uint32(13), out=tmp)
    h ^= tmp
    return h


def _absorb(h: np.ndarray, v, out=None, tmp=None) -> np.ndarray:
    """h combined with the values v (broadcast of h and v): a new uint32 array, or `out` (and
    `tmp`, `_mix_inplace`'s buffer) where the caller has buffers of that shape."""
    out = np.bitwise_xor(h, np.asarray(v).astype(np.int64).astype(np.uint32), out=out)
    out += np.uint32(0x61C88647)
    return _mix_inplace(out, tmp)


def _leading(seed: int, counter: int, channels: Sequence[int], origins, spatial) -> np.ndarray:
    """The hashes of (seed, counter, channel) and every axis but the last: (B, C, *spatial[:-1],
    1), a small array that the last axis's coordinates then finish."""
    nd, b, c = len(spatial), len(origins), len(channels)
    org = np.asarray(origins, np.int64).reshape(b, nd)
    h = _absorb(_mix_inplace(np.array([seed & M32], np.uint32)), counter)
    h = _absorb(h.reshape([1] * (nd + 2)), np.asarray(channels).reshape(1, c, *([1] * nd)))
    for ax, n in enumerate(spatial[:-1]):
        view = [1] * (nd + 2)
        view[2 + ax] = n
        h = _absorb(h, org[:, ax].reshape(b, *([1] * (nd + 1))) + np.arange(n).reshape(view))
    return np.broadcast_to(h, (b, c, *spatial[:-1], 1))


def _last(origins, n: int) -> np.ndarray:
    """Each element's coordinates along the last axis (B, n), as `_absorb` takes them."""
    org = np.asarray([o[-1] for o in origins], np.int64).reshape(-1, 1)
    return (org + np.arange(n)).astype(np.uint32)


def hashes(seed: int, counter: int, channels: Sequence[int], origins, spatial) -> np.ndarray:
    """Each pixel's uint32 hash (B, C, *spatial) of (seed, counter, channel, global position):
    element b's pixel 0 is at `origins[b]`; C = len(channels)."""
    nd = len(spatial)
    lead = _leading(seed, counter, channels, origins, spatial)
    last = _last(origins, int(spatial[-1])).reshape(len(origins), *([1] * nd), -1)
    return _absorb(lead, last)


def pair_grid(origins, spatial) -> tuple[list, tuple, list[int]]:
    """The grid the hashes are made on: (origins, spatial) grown to whole pairs of the last axis
    (an element starting on an odd pixel also hashes the one before it), and each element's
    offset (0 or 1) into it."""
    odd = [int(o[-1]) & 1 for o in origins]
    pairs = (max(odd) + int(spatial[-1]) + 1) // 2
    grown = [(*o[:-1], int(o[-1]) - (int(o[-1]) & 1)) for o in origins]
    return grown, (*spatial[:-1], 2 * pairs), odd


def box_muller(h: np.ndarray, r: np.ndarray, a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Standard normals (float32) into `out` (..., W) from the hashes `h` (..., W) of whole pixel
    pairs (`pair_grid`): a pair's two hashes are its two uniforms, its cosine and sine normals
    its two values. r, a: float32 buffers of h's shape with W / 2 on the last axis."""
    scale = np.float32(2.0**-32)
    np.copyto(r, h[..., 0::2], casting="unsafe")  # uint32 -> float32, as astype rounds
    r += np.float32(0.5)
    r *= scale
    np.log(r, out=r)
    r *= np.float32(-2.0)
    np.sqrt(r, out=r)
    np.copyto(a, h[..., 1::2], casting="unsafe")
    a += np.float32(0.5)
    a *= np.float32(2.0 * np.pi) * scale
    np.multiply(r, np.cos(a), out=out[..., 0::2])
    np.multiply(r, np.sin(a, out=a), out=out[..., 1::2])
    return out


def normals(seed: int, counter: int, channels: Sequence[int], origins, spatial) -> np.ndarray:
    """Standard normal noise (B, C, *spatial), float32, keyed by (seed, counter, channel, global
    position); element b's pixel 0 is at `origins[b]`.

    Made in blocks of about `BLOCK` pixels along the last axis's rows, each hashed and turned
    into normals in buffers that stay in cache (1.7x faster than whole-array passes for a
    batch of 512 x 1024 tiles; the same values)."""
    grown, grid, odd = pair_grid(origins, spatial)
    b, c, n, width = len(origins), len(channels), int(spatial[-1]), grid[-1]
    lead = _leading(seed, counter, channels, grown, grid)
    last = _last(grown, width)
    out = np.empty((b, c, *spatial), np.float32)
    rows = max(1, min(BLOCK // width, math.prod(grid[:-1])))
    h, tmp = np.empty((rows, width), np.uint32), np.empty((rows, width), np.uint32)
    r, a = np.empty((rows, width // 2), np.float32), np.empty((rows, width // 2), np.float32)
    pairs = np.empty((rows, width), np.float32)
    for i in range(b):
        for ch in range(c):
            head, dst = lead[i, ch].reshape(-1, 1), out[i, ch].reshape(-1, n)
            for y0 in range(0, len(head), rows):
                m = min(rows, len(head) - y0)
                _absorb(head[y0 : y0 + m], last[i], out=h[:m], tmp=tmp[:m])
                box_muller(h[:m], r[:m], a[:m], pairs[:m])
                dst[y0 : y0 + m] = pairs[:m, odd[i] : odd[i] + n]
    return out
