import json

import numpy as np
import pytest

from microdiff import normalize
from tests.conftest import write_image


def _store(tmp_path, data, name="s"):
    return write_image(tmp_path / f"{name}.ome.zarr", data, "ome-zarr", "cyx")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_percentiles_are_exact(tmp_path, rng, dtype):
    top = np.iinfo(dtype).max
    data = rng.integers(0, top, (2, 300, 1500)).astype(dtype)
    stats = normalize.compute([_store(tmp_path, data)], (1.0, 99.8))
    for c, ch in enumerate(stats["channels"]):
        expect = np.percentile(data[c], [1.0, 99.8], method="inverted_cdf")
        assert ch["low"] == expect[0] and ch["high"] == expect[1]
        assert ch["mean"] == pytest.approx(data[c].mean()) and ch["std"] == pytest.approx(
            data[c].std()
        )


def test_float_percentiles_within_one_bin(tmp_path, rng):
    data = rng.normal(5, 2, (1, 400, 400)).astype(np.float32)
    stats = normalize.compute([_store(tmp_path, data)], (2.0, 98.0))
    width = (data.max() - data.min()) / normalize.FLOAT_BINS
    expect = np.percentile(data, [2.0, 98.0])
    assert abs(stats["channels"][0]["low"] - expect[0]) <= 2 * width
    assert abs(stats["channels"][0]["high"] - expect[1]) <= 2 * width


def test_pooled_equals_concatenated(tmp_path, rng):
    a = rng.integers(0, 1000, (1, 100, 100)).astype(np.uint16)
    b = rng.integers(500, 3000, (1, 100, 100)).astype(np.uint16)
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    normalize.compute([_store(tmp_path, a, "a")], (1, 99), pa)
    normalize.compute([_store(tmp_path, b, "b")], (1, 99), pb)
    merged = normalize.merge_files([pa, pb], (1, 99))["channels"][0]
    both = np.concatenate([a.ravel(), b.ravel()])
    assert merged["low"] == np.percentile(both, 1, method="inverted_cdf")
    assert merged["high"] == np.percentile(both, 99, method="inverted_cdf")


def test_transform_is_invertible(tmp_path, rng):
    data = rng.integers(0, 4000, (2, 64, 64)).astype(np.uint16)
    out = tmp_path / "norm.json"
    normalize.compute([_store(tmp_path, data)], (1, 99.8), out)
    stats = json.loads(out.read_text())
    assert stats["microdiff"]["stage"] == "normalize"
    norm = normalize.Normalizer.from_json(out)
    y = norm.forward(data)
    assert abs(np.percentile(y[0], 1)) < 0.01 and abs(np.percentile(y[0], 99.8) - 1) < 0.01
    np.testing.assert_array_equal(norm.inverse(y, dtype=np.uint16), data)
    yb = norm.forward(np.moveaxis(data, 0, -1), channel_axis=-1)
    np.testing.assert_allclose(np.moveaxis(yb, -1, 0), y)


def test_flat_channel_stays_invertible(tmp_path):
    data = np.full((1, 32, 32), 7, np.uint16)
    ch = normalize.compute([_store(tmp_path, data)], (1, 99))["channels"][0]
    assert ch["high"] > ch["low"]


def test_constant_channel_is_a_warning_in_log_and_stats(tmp_path, rng, caplog):
    data = np.stack([np.zeros((32, 32), np.uint16), rng.integers(0, 900, (32, 32), np.uint16)])
    store = _store(tmp_path, data)
    out = tmp_path / "norm.json"
    with caplog.at_level("WARNING", logger="microdiff"):
        stats = normalize.compute([store], (1, 99.8), out)
    assert len(stats["warnings"]) == 1 and "channel 0 is flat" in stats["warnings"][0]
    assert str(store) in stats["warnings"][0]
    assert json.loads(out.read_text())["warnings"] == stats["warnings"]
    assert any("channel 0 is flat" in r.getMessage() for r in caplog.records)
    assert stats["channels"][0].get("flat") and "flat" not in stats["channels"][1]
    good = normalize.compute([_store(tmp_path / "b", data[1:])], (1, 99.8))
    assert "warnings" not in good


def test_bad_percentiles(tmp_path):
    with pytest.raises(ValueError, match="percentiles"):
        normalize.compute([], (50, 10))
