"""Kept: values kept for reuse, bounded in bytes, least recently used dropped first."""

import numpy as np

from microdiff.kept import Kept


def test_kept_drops_the_least_recently_used_past_its_bound():
    kept = Kept(3 * 800)
    for i in range(3):
        assert kept.put(i, np.zeros(100))  # 800 bytes each
    assert kept.get(0) is not None  # 0 is now the most recently used
    kept.put(3, np.zeros(100))
    assert kept.get(1) is None and all(kept.get(i) is not None for i in (0, 2, 3))
    kept.put(0, np.zeros(50))  # replacing a value counts its own size once
    kept.put(4, np.zeros(100))
    assert len(kept) == 3 and kept.get(2) is None  # 400 + 800 + 800 fit, 2 went


def test_kept_refuses_values_over_its_largest_and_keeps_the_latest_without_one():
    small = Kept(1000, largest=500)
    assert not small.put("big", np.zeros(100)) and small.get("big") is None
    unbounded = Kept(1000)
    assert unbounded.put("big", np.zeros(1000)) and unbounded.get("big") is not None
    unbounded.put("next", np.zeros(1000))  # past the bound: only the latest stays
    assert len(unbounded) == 1 and unbounded.get("next") is not None
    unbounded.clear()
    assert len(unbounded) == 0
