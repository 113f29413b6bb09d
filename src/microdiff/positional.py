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

from collections.abc import Sequence

import numpy as np

M32 = 0xFFFFFFFF


def _mix_inplace(h: np.ndarray) -> np.ndarray:
    """A 32-bit integer finaliser on a uint32 array, in place (products wrap modulo 2^32)."""
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(13)
    return h


def _absorb(h: np.ndarray, v) -> np.ndarray:
    """h combined with the values v (a new uint32 array; broadcast of h and v)."""
    out = np.bitwise_xor(h, np.asarray(v).astype(np.int64).astype(np.uint32))
    out += np.uint32(0x61C88647)
    return _mix_inplace(out)


def hashes(seed: int, counter: int, channels: Sequence[int], origins, spatial) -> np.ndarray:
    """Each pixel's uint32 hash (B, C, *spatial) of (seed, counter, channel, global position):
    element b's pixel 0 is at `origins[b]`; C = len(channels)."""
    nd, b, c = len(spatial), len(origins), len(channels)
    org = np.asarray(origins, np.int64).reshape(b, nd)
    h = _absorb(_mix_inplace(np.array([seed & M32], np.uint32)), counter)
    h = _absorb(h.reshape([1] * (nd + 2)), np.asarray(channels).reshape(1, c, *([1] * nd)))
    for ax, n in enumerate(spatial):
        view = [1] * (nd + 2)
        view[2 + ax] = n
        coord = org[:, ax].reshape(b, *([1] * (nd + 1))) + np.arange(n).reshape(view)
        h = _absorb(h, coord)
    full = (b, c, *spatial)
    return h if h.shape == full else np.broadcast_to(h, full).copy()


def pair_grid(origins, spatial) -> tuple[list, tuple, list[int]]:
    """The grid the hashes are made on: (origins, spatial) grown to whole pairs of the last axis
    (an element starting on an odd pixel also hashes the one before it), and each element's
    offset (0 or 1) into it."""
    odd = [int(o[-1]) & 1 for o in origins]
    pairs = (max(odd) + int(spatial[-1]) + 1) // 2
    grown = [(*o[:-1], int(o[-1]) - (int(o[-1]) & 1)) for o in origins]
    return grown, (*spatial[:-1], 2 * pairs), odd


def box_muller(h: np.ndarray, odd: Sequence[int], n: int) -> np.ndarray:
    """Standard normals (float32) from the hashes `h` of whole pixel pairs (`pair_grid`): element
    b's `n` pixels of the last axis from offset odd[b]."""
    scale = np.float32(2.0**-32)
    r = h[..., 0::2].astype(np.float32)
    r += np.float32(0.5)
    r *= scale
    np.log(r, out=r)
    r *= np.float32(-2.0)
    np.sqrt(r, out=r)
    a = h[..., 1::2].astype(np.float32)
    a += np.float32(0.5)
    a *= np.float32(2.0 * np.pi) * scale
    out = np.empty(h.shape, np.float32)
    np.multiply(r, np.cos(a), out=out[..., 0::2])
    np.multiply(r, np.sin(a, out=a), out=out[..., 1::2])
    if not any(odd) and out.shape[-1] == n:
        return out
    return np.stack([out[i, ..., s : s + n] for i, s in enumerate(odd)])


def normals(seed: int, counter: int, channels: Sequence[int], origins, spatial) -> np.ndarray:
    """Standard normal noise (B, C, *spatial), float32, keyed by (seed, counter, channel, global
    position); element b's pixel 0 is at `origins[b]`."""
    grown, grid, odd = pair_grid(origins, spatial)
    return box_muller(hashes(seed, counter, channels, grown, grid), odd, int(spatial[-1]))
