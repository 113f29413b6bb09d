"""The shipped cell model, sampled as the segment stage samples it, keeps the background
background (issue 21).

Sampling starts from pure noise at the model's `segment.sigma_max`. At sigma 5 a training input
(target + 5 * noise) still carries the target (fg is -1 on the background), and a cell model
reads it: given pure noise there it called 0.1-0.45 of its own training images' background
cell (0.01-0.03 from sigma 20), which is how the cell models conditioned on the nuclei found
came to segment worse than their training loss said."""

import numpy as np
import pytest

from microdiff.normalize import percentile_norm
from microdiff.segment.inputs import PAD
from microdiff.segment.model import Model, cell_condition, nuclei_prob, predict
from microdiff.shipped import SEGMENT_CELLS, SEGMENT_NUCLEI
from microdiff.simulate import simulate_image


def background_prob(cell_model, seed: int = 101, shape=(192, 192)) -> tuple[float, float]:
    """Mean cell probability (K=4, 1 step, as the stage: its own sigma_max, mirrored by PAD)
    on a simulated image's truth background and on its cells."""
    sim = simulate_image(shape, density=300, photons=30.0, seed=seed)
    img = percentile_norm(sim.noisy.astype(np.float32))
    cells = Model.load(cell_model, device="cpu")
    found = nuclei_prob(Model.load(SEGMENT_NUCLEI, device="cpu"), img, 4, 1, seed=0, pad=PAD)
    cond = cell_condition(cells, img[None], found[None])
    s = predict(cells, cond, [(0, 0)], samples=4, steps=1, seed=1, pad=PAD)
    p = (s[0, :, 0].mean(0) + 1) / 2
    bg = sim.cells == 0
    return float(p[bg].mean()), float(p[~bg].mean())


def test_the_sampling_start_is_where_the_target_is_drowned():
    assert Model.load(SEGMENT_CELLS, device="cpu").sigma_max >= 20


@pytest.mark.parametrize("seed", [101, 7])
def test_the_shipped_cell_model_leaves_the_background_out(seed):
    bg, fg = background_prob(SEGMENT_CELLS, seed)
    assert bg < 0.1 and fg > 0.8
