"""bin_index: searchsorted's bins by comparisons, the same numbers."""

import numpy as np
import pytest

from microdiff.binning import bin_index


def _searchsorted(values, edges):
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


@pytest.mark.parametrize("bins", [1, 2, 16, 40])
def test_bin_index_is_the_clipped_searchsorted(bins):
    rng = np.random.default_rng(bins)
    values = np.r_[rng.gamma(2.0, 50.0, 5000), np.round(rng.normal(80, 5, 3000)), -np.inf, np.inf]
    edges = np.unique(np.quantile(values[:6000], np.linspace(0, 1, bins + 1)))
    for v in (values, edges, edges - 1e-9, edges + 1e-9):  # ties: a value on an edge
        got = bin_index(v, edges, np.min_scalar_type(len(edges)))
        np.testing.assert_array_equal(got, _searchsorted(v, edges))


def test_bin_index_with_nan_searches():
    values = np.array([1.0, np.nan, 3.0, 2.0])
    edges = np.quantile(values, np.linspace(0, 1, 5))  # all NaN
    np.testing.assert_array_equal(bin_index(values, edges), _searchsorted(values, edges))
    edges = np.array([0.0, 1.5, 2.5, 4.0])  # finite edges, a NaN value: the last bin, as before
    np.testing.assert_array_equal(bin_index(values, edges), _searchsorted(values, edges))
    assert bin_index(np.array([np.inf, -np.inf, 1.5]), edges).tolist() == [2, 0, 1]
