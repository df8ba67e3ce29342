"""Permutation p-values, confidence intervals, smoothness profiles and the notebook API."""

import numpy as np
import pytest
from scipy.stats import kstest

import zoo.metrics as zm
from zoo.errors import DataError, UnknownNameError, ZooError
from zoo.metrics.base import MetricUndefined
from zoo.metrics.smoothness import smoothness
from zoo.metrics.stats import (
    confidence_interval,
    confidence_intervals,
    expected_cka_matrix,
    permutation_pvalues,
    permutation_test,
)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    return X, X @ rng.normal(size=(5, 4)) + 0.5 * rng.normal(size=(40, 4))


def test_identical_representations_get_the_smallest_p(pair):
    X, Y = pair
    assert permutation_test("cka", X, X, permutations=99) == pytest.approx(1 / 100)
    assert permutation_test("cka", X, Y, permutations=99) == pytest.approx(1 / 100)


def test_independent_pairs_give_roughly_uniform_p_values():
    rng = np.random.default_rng(1)
    p = np.array([permutation_test("cka", rng.normal(size=(30, 4)), rng.normal(size=(30, 6)),
                                   permutations=99, seed=k) for k in range(30)])
    # 30 independent tests: uniform p has mean 0.5; a broken test gives tiny p everywhere.
    assert 0.35 < p.mean() < 0.65
    assert np.mean(p <= 0.05) <= 0.2
    assert kstest(p, "uniform").pvalue > 0.05


def test_matrix_p_values_equal_the_single_pair_tests(pair):
    X, Y = pair
    A, B = [X, Y], [Y, X[:, :2], X ** 2]
    p = permutation_pvalues("cka", A, B, permutations=9, seed=5)
    single = [[permutation_test("cka", a, b, permutations=9, seed=5) for b in B] for a in A]
    np.testing.assert_allclose(p, single)


def test_distance_metrics_count_smaller_values_as_extreme(pair):
    X, _ = pair
    # Identical data: the angular distance is 0, no shuffle can be as small.
    assert permutation_test("procrustes-angular", X, X, permutations=49) == pytest.approx(1 / 50)


def test_p_values_of_undefined_pairs_are_nan(pair):
    X, _ = pair
    p = permutation_pvalues("cka", [X], [X, np.ones((40, 2))], permutations=9)
    assert p[0, 0] == pytest.approx(0.1) and np.isnan(p[0, 1])


def test_interval_brackets_the_value_and_shrinks_with_n():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    Y = X @ rng.normal(size=(3, 3)) + 2.0 * rng.normal(size=(400, 3))
    value = zm.compute("cka", X, Y)
    low, high = confidence_interval("cka", X, Y, seed=4)
    assert low < value < high
    low, high = confidence_interval("cka-debiased", X, Y, seed=4)
    low_small, high_small = confidence_interval("cka-debiased", X[:50], Y[:50], seed=4)
    assert high_small - low_small > 1.5 * (high - low)


def test_interval_of_identical_data_is_a_point(pair):
    X, _ = pair
    low, high, reasons = confidence_intervals("cka-debiased", [X])
    # every replicate is 1 up to float64 rounding, amplified by at most the 20 groups
    assert low[0, 0] == pytest.approx(1.0, abs=1e-12) and high[0, 0] == pytest.approx(
        1.0, abs=1e-12)
    assert reasons[0, 0] == ""
    # biased cka at n = 40, width 5: unrelated data would score ~0.13, so no interval
    low, _, reasons = confidence_intervals("cka", [X])
    assert np.isnan(low[0, 0]) and "use cka-debiased" in reasons[0, 0]


def test_expected_cka_matrix_shape_and_undefined(pair):
    X, Y = pair
    E = expected_cka_matrix([X, Y], [Y, np.zeros((40, 3))])
    assert E.shape == (2, 2) and np.isnan(E[:, 1]).all()
    assert 0 < E[0, 0] < 1 and E[1, 0] == pytest.approx(expected_cka_matrix([Y])[0, 0])


def test_smoothness_profile_definition(pair):
    X, Y = pair
    layers = [X, X * 3.0, Y, np.ones((40, 2))]
    profile = smoothness(layers)
    assert profile.values[0] == pytest.approx(0.0, abs=1e-12)  # scaling: CKA 1, change 0
    assert profile.values[1] == pytest.approx(1.0 - zm.compute("cka", X, Y))
    assert np.isnan(profile.values[2]) and "is constant" in profile.reasons[2]
    assert profile.reasons[:2] == ["", ""]
    # A distance metric's profile is the distance itself.
    angular = smoothness([X, Y], "procrustes-angular").values
    assert angular[0] == pytest.approx(zm.compute("procrustes-angular", X, Y))
    with pytest.raises(ZooError, match="at least 2 layers"):
        smoothness([X])


def test_compute_and_matrix_through_the_registry(pair):
    X, Y = pair
    assert zm.compute("cka", X, X) == pytest.approx(1.0)
    M = zm.matrix("linreg", [X, Y])
    assert M.shape == (2, 2) and M[0, 1] != pytest.approx(M[1, 0])  # both directions
    with pytest.warns(RuntimeWarning, match="is constant"):
        M = zm.matrix("cka", [X], [Y, np.ones((40, 2))])
    assert np.isfinite(M[0, 0]) and np.isnan(M[0, 1])


def test_api_errors_are_clear(pair):
    X, Y = pair
    with pytest.raises(UnknownNameError, match="unknown metric 'ckaa'"):
        zm.compute("ckaa", X, Y)
    with pytest.raises(UnknownNameError, match="parameter of metric 'cka'"):
        zm.compute("cka", X, Y, frac=0.5)
    with pytest.raises(DataError, match="rows"):
        zm.compute("cka", X, Y[:30])
    with pytest.raises(MetricUndefined, match="is constant"):
        zm.compute("cka", X, np.ones((40, 2)))
    with pytest.raises(ZooError, match="samples, features"):
        zm.compute("cka", X[:, :, None], Y)
