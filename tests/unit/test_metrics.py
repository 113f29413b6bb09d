"""Matching-based AP (StarDist definition) and AUROC on hand-made cases."""

import numpy as np
import pytest

from microdiff.metrics import auroc, average_precision, false_positive_flags, match


def squares(spec, shape=(20, 40)):
    lab = np.zeros(shape, np.int32)
    for i, (y, x, h, w) in enumerate(spec, 1):
        lab[y : y + h, x : x + w] = i
    return lab


def test_ap_counts_tp_fp_fn():
    true = squares([(0, 0, 10, 10), (0, 20, 10, 10)])
    # one exact, one shifted by 4 of 10 columns (IoU 6/14 < 0.5), one extra object
    pred = squares([(0, 0, 10, 10), (0, 24, 10, 10), (12, 0, 5, 5)])
    m = match(true, pred, 0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 2, 1)
    assert m["ap"] == pytest.approx(1 / 4)
    assert average_precision(true, pred, [0.3, 0.5]) == pytest.approx([2 / 3, 1 / 4])
    assert false_positive_flags(true, pred) == {1: False, 2: True, 3: True}


def test_ap_over_a_list_sums_counts_and_is_one_for_identical():
    a = squares([(0, 0, 5, 5)])
    assert average_precision([a, a], [a, a], [0.5, 0.9]) == [1.0, 1.0]
    empty = np.zeros_like(a)
    assert average_precision([a, a], [a, empty], [0.5]) == [pytest.approx(1 / 2)]
    assert match(empty, empty)["ap"] == 1.0


def test_matching_is_one_to_one():
    true = squares([(0, 0, 10, 10)])
    pred = squares([(0, 0, 10, 5), (0, 5, 10, 5)])  # two halves: IoU 0.5 each, none above
    assert match(true, pred, 0.4)["tp"] == 1 and match(true, pred, 0.4)["fp"] == 1


def test_auroc():
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.3, 0.6, 0.2, 0.7], [True, False, False, True]) == pytest.approx(0.75)
    assert np.isnan(auroc([1, 2], [True, True]))
