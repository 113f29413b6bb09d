"""Where samplers get their randomness.

Samplers draw all fresh noise through one tiny interface: `generator` is either a
`torch.Generator` (or None, the global RNG) or an object with `draw(like, counter) -> Tensor`.
`counter` numbers the draws of one sampling run (`step * DRAWS_PER_STEP + k`, k-th draw of step
`step`); the initial noise, drawn by the caller through `initial_noise`, uses counter -1.

`PositionalNoise` makes noise that depends only on (seed, counter, channel, global pixel
coordinate), never on where a tile grid falls, so overlapping tiles sampled separately see the
same noise at the same pixel (seam-free tiled sampling): `microdiff.positional`'s noise (a hash
per pixel, Box-Muller over pixel pairs), made in numpy on the CPU and by the same hash in int64
tensors on other devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .. import positional
from ..kept import Kept

DRAWS_PER_STEP = 64
INITIAL = -1
_M32 = positional.M32
# CPU draws kept for reuse, least recently used first: a batch job segments image after image of
# one shape with one seed, and so draws the same noise (the same origins, shapes and seeds) for
# each; the hash and Box-Muller cost about 4 ms a draw of 2 x 584 x 760. Bounded in bytes.
# A draw over a quarter of the bound (large tiles, batches) is not kept.
KEPT = Kept(64 << 20, largest=16 << 20)


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser on int64 tensors holding values in [0, 2^32).

    Multipliers stay below 2^31 so every product fits in a signed 64-bit integer (no overflow).
    """
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _M32
    h = h ^ (h >> 15)
    h = (h * 0x5BD1E995) & _M32
    h = h ^ (h >> 16)
    h = (h * 0x2C1B3C6D) & _M32
    return h ^ (h >> 13)


def _absorb(h: torch.Tensor | int, v: torch.Tensor | int) -> torch.Tensor:
    if not isinstance(h, torch.Tensor):
        h = torch.tensor(h, dtype=torch.int64)
    v = torch.as_tensor(v, dtype=torch.int64, device=h.device) & _M32
    return _mix(((h ^ v) + 0x61C88647) & _M32)


def _hash_torch(seed: int, counter: int, c: int, origins, spatial, dev):
    """`positional.hashes` of channels 0..c-1 in int64 tensors on device `dev` (the same
    bits)."""
    b, nd = len(origins), len(spatial)
    org = torch.tensor(origins, dtype=torch.int64, device=dev)  # (B, nd)
    h = _absorb(_mix(torch.tensor(seed & _M32, dtype=torch.int64, device=dev)), counter)
    h = _absorb(h, torch.arange(c, device=dev).view(1, c, *([1] * nd)))
    h = h.expand(b, c, *([1] * nd))
    for ax, n in enumerate(spatial):
        shape = [b, 1] + [1] * nd
        shape[2 + ax] = n
        coord = org[:, ax].view(b, *([1] * (nd + 1))) + torch.arange(n, device=dev).view(
            [1, 1] + [n if i == ax else 1 for i in range(nd)]
        )
        h = _absorb(h, coord.expand(shape))
    return h


class PositionalNoise:
    """Standard-normal noise keyed by global pixel position.

    `origins[b]` is the global spatial coordinate ((y, x) or (z, y, x)) of pixel [0, 0(, 0)] of
    batch element b. `draw(like, counter)` returns a tensor shaped like `like` whose value at
    (b, c, *p) depends only on (seed, counter, c, origins[b] + p).
    """

    def __init__(self, seed: int, origins: Sequence[Sequence[int]]):
        self.seed = int(seed)
        self.origins = [tuple(int(v) for v in o) for o in origins]
        if not self.origins:
            raise ValueError("PositionalNoise needs one origin per batch element")

    def draw(self, like: torch.Tensor, counter: int) -> torch.Tensor:
        b, c, *spatial = like.shape
        if b != len(self.origins) or any(len(o) != len(spatial) for o in self.origins):
            raise ValueError(
                f"PositionalNoise has {len(self.origins)} origins of "
                f"{len(self.origins[0])} axes for a tensor of shape {tuple(like.shape)}"
            )
        if like.device.type != "cpu":
            grown, grid, odd = positional.pair_grid(self.origins, spatial)
            h = _hash_torch(self.seed, counter, c, grown, grid, like.device)
            return _box_muller(h, odd, spatial[-1], like.dtype)
        key = (self.seed, counter, c, tuple(self.origins), tuple(spatial), like.dtype)
        kept = KEPT.get(key)
        if kept is None:
            z = positional.normals(self.seed, counter, range(c), self.origins, spatial)
            kept = torch.from_numpy(z).to(like.dtype)
            if not KEPT.put(key, kept):
                return kept  # not kept (large): the caller's own already
        return kept.clone()  # the caller's own tensor: the kept one is never handed out


def _box_muller(h: torch.Tensor, odd, n: int, dtype) -> torch.Tensor:
    """`positional.box_muller` in tensors on the hashes' device, cut to each element's pixels
    as `positional.normals` cuts them."""
    h1, h2 = h[..., 0::2], h[..., 1::2]
    r = h1.float().add_(0.5).div_(2.0**32).log_().mul_(-2.0).sqrt_()
    a = h2.float().add_(0.5).mul_(2.0 * math.pi / 2.0**32)
    out = torch.empty((*r.shape, 2), dtype=torch.float32, device=r.device)
    torch.mul(r, torch.cos(a), out=out[..., 0])
    torch.mul(r, a.sin_(), out=out[..., 1])
    out = out.flatten(-2)
    if not any(odd):
        out = out[..., :n] if out.shape[-1] != n else out
    else:
        out = torch.stack([out[i, ..., s : s + n] for i, s in enumerate(odd)])
    return out.to(dtype).contiguous()


def draw_noise(generator, like: torch.Tensor, counter: int) -> torch.Tensor:
    """Standard normal noise shaped like `like` from a torch.Generator, None or a drawer: the
    caller's own tensor (a drawer's `draw` never hands out one it keeps)."""
    if generator is not None and hasattr(generator, "draw"):
        return generator.draw(like, counter).to(device=like.device, dtype=like.dtype)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def initial_noise(generator, shape, sigma: float, dtype=torch.float32, device="cpu"):
    """`sigma` times standard normal noise of `shape`: the start of a sampling run (scaled in
    place: the noise is the caller's own)."""
    like = torch.empty(tuple(shape), dtype=dtype, device=device)
    return draw_noise(generator, like, INITIAL).mul_(float(sigma))
