"""Bounded memory and overlapped I/O: what bench/scale.py measures, checked small and fast."""

import threading
import tracemalloc

import numpy as np
import pytest
import zarr

from microdiff import normalize, shards
from microdiff.io import ngff
from microdiff.io.labels import create_labels, fill_label_pyramid


def test_bands_partition_the_image_and_stay_under_the_budget():
    shape, chunks = (2, 1100, 70000), (1, 512, 1024)
    seen = np.zeros((2, 3, 69), np.int64)  # chunk grid: every chunk covered exactly once
    for c, (ys, xs) in ngff.iter_bands(shape, chunks, max_pixels=1 << 20):
        assert (ys.stop - ys.start) * (xs.stop - xs.start) <= 1 << 20
        assert ys.start % 512 == 0 and xs.start % 1024 == 0
        seen[c, ys.start // 512, xs.start // 1024 : -(-xs.stop // 1024)] += 1
    assert (seen == 1).all()
    narrow = list(ngff.iter_bands((1, 600, 2000), (1, 512, 1024), max_pixels=1 << 20))
    assert [sl[-1] for _, sl in narrow] == [slice(0, 2000)] * 2  # whole rows where they fit


def _image(path, width, rng):
    g = ngff.create_image(path, (1, 1024, width), np.uint16, "cyx", chunks=(1, 512, 1024))
    for x in range(0, width, 4096):
        g["0"][0, :, x : x + 4096] = rng.integers(0, 4000, (1024, 4096), dtype=np.uint16)
    return g


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_pyramid_and_statistics_memory_does_not_grow_with_width(tmp_path, rng):
    """A 4x wider image: the same peak memory (whole-row bands would need 4x)."""
    peaks = {}
    for width in (4096, 16384):
        g = _image(tmp_path / f"w{width}.ome.zarr", width, rng)
        pyr = _peak(lambda g=g: ngff.fill_pyramid(g))
        hist = _peak(lambda g=g: normalize.channel_histograms(g))
        labels = create_labels(g, ["nuclei"], (1024, width))["nuclei"]
        labels["0"][:, :2048] = 7
        lab = _peak(lambda g=labels: fill_label_pyramid(g))
        peaks[width] = (pyr, hist, lab)
        assert g["1"][0, 0, 0] == ngff.downsample2(g["0"][0, :2, :2])[0, 0]
        assert labels["1"][0, 1023] == 7 and labels["1"][0, 1024] == 0
    # zarr encodes several chunks at once, how many varies run to run: a few 1 MiB label chunks
    # of slack (whole-row bands would need 4x, 20+ MiB more)
    for narrow, wide in zip(peaks[4096], peaks[16384]):
        assert wide < 1.3 * narrow + (4 << 20), peaks


def test_pyramid_in_pieces_equals_whole_rows(tmp_path, rng, monkeypatch):
    data = rng.integers(0, 60000, (1, 300, 5001), dtype=np.uint16)
    whole = ngff.downsample2(data)
    monkeypatch.setattr(ngff, "BAND_PIXELS", 4 * 64 * 256)  # pieces of 256 x 64 pixels
    g = ngff.create_image(
        tmp_path / "p.ome.zarr", data.shape, data.dtype, "cyx", chunks=(1, 64, 256)
    )
    g["0"][:] = data
    ngff.fill_pyramid(g)
    np.testing.assert_array_equal(g["1"][:], whole)


def test_prefetch_overlaps_reading_and_writing_with_compute():
    """Item 1 is read while item 0 is processed, item 0 written while item 1 is processed:
    a serial loop would wait here until the timeout and fail."""
    started = [threading.Event(), threading.Event()]
    log = []

    def load(i):
        if i == 1:
            assert started[0].wait(10), "item 1 was not read while item 0 was processed"
        return np.full(2, i), [i]

    def process(block, origins):
        started[origins[0]].set()
        return block * 10

    def save(i, result, origins):
        if i == 0:
            assert started[1].wait(10), "item 0 was not written while item 1 was processed"
        log.append((i, result.tolist()))

    shards.prefetch([0, 1], load, process, save)
    assert log == [(0, [0, 0]), (1, [10, 10])]


def test_prefetch_raises_a_failed_write():
    def save(i, result, origins):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        shards.prefetch([0, 1, 2], lambda i: (i, [i]), lambda b, o: b, save)


def test_shard_store_round_trip_with_background_writes(tmp_path, rng):
    from microdiff import tiling

    data = rng.random((1, 200, 300)).astype(np.float32)
    src = zarr.create_array(str(tmp_path / "s.zarr"), shape=data.shape, dtype="f4")
    src[:] = data
    plan = tiling.plan_tiles((200, 300), 64, 8, (64, 64), tiles_per_shard=100)
    out = shards.create_shard_store(tmp_path / "o.zarr", data.shape, "f4", plan)
    assert shards.run_shard(src, plan, 0, lambda b, o: b + 1, out, batch_size=2) == len(plan)
    np.testing.assert_array_equal(out[:], data + 1)


def test_codecs_follow_the_io_benchmark(tmp_path):
    """Integer images and labels: zstd (they compress); float images: lz4 (fast)."""
    img = ngff.create_image(tmp_path / "f.ome.zarr", (1, 64, 64), np.float32, "cyx")
    raw = ngff.create_image(tmp_path / "u.ome.zarr", (1, 64, 64), np.uint16, "cyx")
    lab = create_labels(raw, ["nuclei"], (64, 64))["nuclei"]
    names = [a["0"].compressors[0].cname for a in (img, raw, lab)]
    assert names == ["lz4", "zstd", "zstd"]
