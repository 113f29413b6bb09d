"""Posterior sampling for tiled stages: K samples of a conditional denoiser, their mean and std.

A stage that samples its posterior (super-resolution, segmentation) runs K independent sampler
runs over one Karras schedule. Sample k draws all its noise from its own seed,
`sample_seed(seed, k)`, through position-keyed noise (`PositionalNoise`, or `PlaneNoise` for a
batch of 2D planes cut from 3D tiles or keyed by channel), so overlapping tiles sampled in
different jobs see the same noise at the same pixel and the stitched output is seam-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .noise import PositionalNoise, initial_noise
from .samplers import sample
from .schedules import karras_sigmas


def sample_seed(seed: int, k: int) -> int:
    """The seed of posterior sample `k` of a run seeded `seed`."""
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])


class PlaneNoise:
    """Position-keyed noise for a batch of 2D planes: element b * planes + z of a (N, C, Y, X)
    batch is plane z of the 3D box whose first pixel is at `origins[b]` (global (z, y, x), or
    (key, y, x) with a key that separates channels or planes), and gets the noise of its global
    position; with planes = 1 every element is a plane of its own."""

    def __init__(self, seed: int, origins: Sequence[Sequence[int]], planes: int = 1):
        self.inner, self.planes = PositionalNoise(seed, origins), planes

    def draw(self, like: torch.Tensor, counter: int) -> torch.Tensor:
        bz, c, y, x = like.shape
        b = bz // self.planes
        shaped = torch.empty((b, c, self.planes, y, x), dtype=like.dtype, device=like.device)
        z = self.inner.draw(shaped, counter)
        return z.permute(0, 2, 1, 3, 4).reshape(bz, c, y, x)


@dataclass(frozen=True)
class Posterior:
    """K = `samples` posterior samples, each one `sampler` run of `steps` steps over the Karras
    schedule from `sigma_max` down to `sigma_min`."""

    sigma_min: float
    sigma_max: float
    steps: int = 1
    sampler: str = "ddim"
    samples: int = 1
    seed: int = 0

    def schedule(self) -> torch.Tensor:
        return karras_sigmas(int(self.steps), sigma_min=self.sigma_min, sigma_max=self.sigma_max)

    @torch.no_grad()
    def draw(
        self,
        den,
        shape: Sequence[int],
        noise: Callable[[int], object],
        finish: Callable[[torch.Tensor], object],
        cond: torch.Tensor | None = None,
        device="cpu",
        first: int = 0,
    ) -> list:
        """[finish(sample k) for each k from `first`]: sample k starts from and draws all its
        noise from `noise(sample_seed(seed, k))` (a position-keyed drawer), so it does not
        depend on the samples drawn before it; `finish` takes it off the device (crop, clamp,
        to numpy) before the next sample is drawn."""
        sigmas = self.schedule()
        out = []
        for k in range(int(first), int(self.samples)):
            gen = noise(sample_seed(self.seed, k))
            x = initial_noise(gen, shape, float(sigmas[0]), device=device)
            out.append(finish(sample(self.sampler, den, x, sigmas, cond=cond, generator=gen)))
        return out


def mean_std(samples: np.ndarray, axis: int, ddof: int = 0):
    """The per-pixel posterior mean and standard deviation (None when there are no more samples
    than `ddof`) over the samples' `axis`."""
    std = samples.std(axis, ddof=ddof) if samples.shape[axis] > ddof else None
    return samples.mean(axis), std
