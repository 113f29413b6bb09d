import numpy as np
import pytest
import zarr

from microdiff import gather, shards, tiling


def _run(tmp_path, img, plan, process, out_shape, factor=1, batch=3):
    stores = []
    for s in range(tiling.n_shards(plan)):
        path = tmp_path / f"s{s}.zarr"
        out = shards.create_shard_store(path, out_shape, "f4", plan, factor)
        shards.run_shard(img, plan, s, process, out, batch_size=batch, factor=factor)
        stores.append(path)
    dst = np.zeros(out_shape, np.float32)
    gather.copy_cores(gather.ShardReader(stores, plan, factor), dst)
    return dst


@pytest.fixture
def image(tmp_path, rng):
    data = rng.random((2, 100, 130)).astype(np.float32)
    arr = zarr.create_array(str(tmp_path / "src.zarr"), shape=data.shape, dtype="f4")
    arr[:] = data
    return arr, data


def test_identity_reassembles_exactly(tmp_path, image):
    arr, data = image
    plan = tiling.plan_tiles((100, 130), 32, 8, (32, 32), tiles_per_shard=5)
    np.testing.assert_array_equal(
        _run(tmp_path, arr, plan, lambda b, o: b * 2, data.shape), 2 * data
    )


def test_origins_are_global_coordinates(tmp_path, image):
    arr, _ = image
    plan = tiling.plan_tiles((100, 130), 32, 8, None, tiles_per_shard=4)

    def coords(batch, origins):
        out = np.zeros((len(batch), 1, *batch.shape[2:]), np.float32)
        for i, (oy, ox) in enumerate(origins):
            yy, xx = np.indices(batch.shape[2:])
            out[i, 0] = (yy + oy) * 1000 + (xx + ox)
        return out

    yy, xx = np.indices((100, 130))
    np.testing.assert_array_equal(
        _run(tmp_path, arr, plan, coords, (1, 100, 130))[0], yy * 1000 + xx
    )


def test_superresolution_factor(tmp_path, image):
    arr, data = image
    plan = tiling.plan_tiles((100, 130), 32, 4, None, tiles_per_shard=6)
    up = lambda b, o: b.repeat(2, -1).repeat(2, -2)  # noqa: E731
    out = _run(tmp_path, arr, plan, up, (2, 200, 260), factor=2)
    np.testing.assert_array_equal(out, data.repeat(2, -1).repeat(2, -2))


def test_padded_tiles_share_one_shape(image):
    arr, data = image
    plan = tiling.plan_tiles((100, 130), 48, 8, None)
    shape = shards.tile_shape(plan)
    for _, core, halo in tiling.iter_tiles(plan):
        block, origin = shards.read_padded(arr, halo, shape, (100, 130))
        assert block.shape[1:] == shape
        rel = core.relative_to(tiling.Box(origin, tuple(o + s for o, s in zip(origin, shape))))
        np.testing.assert_array_equal(
            block[(slice(None), *rel.slices)], data[(slice(None), *core.slices)]
        )


def test_3d_shards(tmp_path, rng):
    data = rng.random((1, 10, 40, 50)).astype(np.float32)
    plan = tiling.plan_tiles((10, 40, 50), (4, 16, 16), (1, 4, 4), None, tiles_per_shard=7)
    out = _run(tmp_path, data, plan, lambda b, o: b + 1, data.shape)
    np.testing.assert_allclose(out, data + 1)


def test_atomic_output_removes_a_killed_writers_sibling(tmp_path):
    from microdiff.atomic import atomic_output

    stale = tmp_path / ".out.zarr.tmp-deadbeef"
    stale.mkdir()
    (stale / "chunk").write_text("half")
    with atomic_output(tmp_path / "out.zarr") as tmp:
        tmp.mkdir()
    assert not stale.exists() and (tmp_path / "out.zarr").is_dir()
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "f.json") as tmp:
        tmp.write_text("{")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == [tmp_path / "out.zarr"]


@pytest.mark.parametrize("group", [None, 1])
def test_shard_reader_reads_any_box_across_tiles(tmp_path, image, group):
    """The one reader of shard stores: tile cores (the image gathers) and any box across tile
    borders (segment's label windows), on a finer grid with super-resolution; a chunk holds
    `group` channels of a tile core (None: all), and any of them can be read."""
    arr, data = image
    plan = tiling.plan_tiles((100, 130), 32, 4, None, tiles_per_shard=5)
    up = lambda b, o: b.repeat(2, -1).repeat(2, -2)  # noqa: E731
    stores = []
    for s in range(tiling.n_shards(plan)):
        stores.append(tmp_path / f"s{s}.zarr")
        out = shards.create_shard_store(stores[-1], (2, 200, 260), "f4", plan, 2, group)
        shards.run_shard(arr, plan, s, up, out, batch_size=3, factor=2)
    assert zarr.open_array(str(stores[0]), mode="r").chunks == (group or 2, 64, 64)
    reader = gather.ShardReader(stores, plan, factor=2)
    fine = data.repeat(2, -1).repeat(2, -2)
    box = tiling.Box((50, 17), (131, 201))
    np.testing.assert_array_equal(reader.read(slice(None), box), fine[:, 50:131, 17:201])
    np.testing.assert_array_equal(reader.read([1], box), fine[1:, 50:131, 17:201])
    np.testing.assert_array_equal(reader.read([1, 0], box), fine[::-1, 50:131, 17:201])
    core, block = reader.tile(len(plan) - 1)
    np.testing.assert_array_equal(block, fine[(slice(None), *core.slices)])


@pytest.mark.parametrize("memory_bytes", [shards.MEMORY_BYTES, 0])
def test_run_whole_keeps_small_shard_stores_in_memory(tmp_path, image, monkeypatch, memory_bytes):
    """A whole image in one process: small shard stores are held in memory (nothing written
    beside the output), larger ones go to disk; the gather reads the same values either way."""
    monkeypatch.setattr(shards, "MEMORY_BYTES", memory_bytes)
    arr, data = image
    plan = tiling.plan_tiles((100, 130), 32, 8, (32, 32), tiles_per_shard=5)
    seen = []

    def shard(i, store):
        shards.write_shard(store, arr, plan, i, lambda b, o: b * 2, 2, 3, attrs={"i": i})
        seen.append(store.exists())

    def gather_(stores):
        reader = gather.ShardReader(stores, plan)
        dst = np.zeros(data.shape, np.float32)
        gather.copy_cores(reader, dst)
        return dst, reader.attrs

    dst, attrs = shards.run_whole(plan, tmp_path / "out.zarr", shard, gather_)
    np.testing.assert_array_equal(dst, 2 * data)
    assert attrs == {"i": 0} and seen == [memory_bytes == 0] * tiling.n_shards(plan)
    assert shards._IN_MEMORY.get() is None  # nothing held after the run
