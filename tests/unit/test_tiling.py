import numpy as np
import pytest

from microdiff import tiling


def blend_window(shape, ramp: int) -> np.ndarray:
    """Overlap-add weights for a tile: 1 inside, a linear ramp of `ramp` pixels at each edge,
    never 0 (the weighting a tiled inference would blend overlapping tiles with)."""
    w = np.ones(tuple(shape), dtype=np.float32)
    for ax, n in enumerate(shape):
        i = np.arange(n, dtype=np.float32)
        prof = np.clip(np.minimum(i + 1, n - i) / (ramp + 1), 1.0 / (ramp + 1), 1.0)
        w *= prof.reshape([-1 if k == ax else 1 for k in range(len(shape))])
    return w


@pytest.mark.parametrize(
    "shape,tile,halo,chunks",
    [
        ((1000, 700), 256, 16, None),
        ((513, 1025), 128, 40, (128, 256)),
        ((9, 300, 200), 64, 8, None),
    ],
)
def test_cores_cover_every_pixel_once(shape, tile, halo, chunks):
    plan = tiling.plan_tiles(shape, tile, halo, chunks, tiles_per_shard=5)
    cover = np.zeros(shape, np.int32)
    for _, core, hbox in tiling.iter_tiles(plan):
        cover[core.slices] += 1
        for a, b, ha, hb, n in zip(core.start, core.stop, hbox.start, hbox.stop, shape):
            h = (halo,) * len(shape)
            assert ha == max(a - h[0], 0) and hb == min(b + h[0], n)  # clipped at the border
            assert 0 <= ha <= a < b <= hb <= n
    assert (cover == 1).all()


def test_cores_align_to_chunks():
    plan = tiling.plan_tiles((1000, 1000), tile=300, halo=10, chunks=(128, 256))
    assert set(plan["y0"] % 128) == {0} and set(plan["x0"] % 256) == {0}
    assert (plan["y1"] - plan["y0"]).max() == 256 and (plan["x1"] - plan["x0"]).max() == 256


def test_shards_group_consecutive_tiles():
    plan = tiling.plan_tiles((100, 100), 10, 0, tiles_per_shard=7)
    assert tiling.n_shards(plan) == 15
    assert plan.groupby("shard").size().max() == 7
    assert [t for t, _, _ in tiling.iter_tiles(plan, shard=1)] == list(range(7, 14))


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="empty"):
        tiling.plan_tiles((0, 10), 4, 1)
    with pytest.raises(ValueError, match="2 or 3"):
        tiling.plan_tiles((10,), 4, 1)


def test_blend_window_is_positive_and_flat_inside():
    w = blend_window((20, 30), 5)
    assert w.min() > 0 and w.max() == 1
    assert (w[5:15, 5:25] == 1).all()
    assert np.allclose(w, w[::-1, ::-1])


def test_patch_boxes_lie_inside(rng):
    boxes = tiling.sample_patch_boxes((50, 40), (16, 64), 100, rng)
    assert all(b.shape == (16, 40) for b in boxes)
    assert all(a >= 0 and b <= n for box in boxes for a, b, n in zip(box.start, box.stop, (50, 40)))
    assert len({b.start for b in boxes}) > 10


def test_box_helpers():
    core = tiling.Box((10, 20), (30, 40))
    halo = tiling.Box((0, 12), (40, 48))
    assert core.relative_to(halo) == tiling.Box((10, 8), (30, 28))
    assert core.scaled((2, 2)) == tiling.Box((20, 40), (60, 80))


@pytest.mark.parametrize(
    ("shape", "tile", "chunks"),
    [
        ((520, 696), None, (512, 512)),
        ((520, 696), 256, (512, 512)),
        ((520, 696), 300, None),
        ((100, 50), (64, 16), (10, 10)),
        ((7, 100, 50), None, None),
        ((7, 100, 50), (4, 32, 32), (1, 32, 32)),
    ],
)
def test_grid_size_is_the_tile_grid_without_its_plan(shape, tile, chunks):
    labels = np.zeros(shape, np.int32)
    plan, edge = tiling.tile_grid(labels, tile, chunks)
    counts, edge2 = tiling.grid_size(labels, tile, chunks)
    assert np.prod(counts) == len(plan) and edge2 == edge
    for k, a in enumerate(tiling.axis_names(len(shape))):
        assert counts[k] == plan[f"{a}0"].nunique()


def test_grid_size_refuses_what_the_plan_refuses():
    with pytest.raises(ValueError):
        tiling.grid_size(np.zeros((0, 5)), 4, None)
    with pytest.raises(ValueError):
        tiling.grid_size(np.zeros((5, 5)), 0, None)
