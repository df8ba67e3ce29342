"""CKA family: hand-computed cases, independent formulas, invariances and the unrelated baseline."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import ortho_group

from zoo.metrics.base import MetricUndefined
from zoo.metrics.cka import REDUCE_RATIO, DebiasedCKA, LinearCKA, RbfCKA
from zoo.metrics.stats import expected_cka


def score(metric, X, Y, **params):
    return metric.score(metric.prepare(X, **params), metric.prepare(Y, **params), **params)


def hsic_biased(K, L):
    """tr(K H L H) / (n-1)^2 with explicit centring matrices (the textbook form)."""
    n = len(K)
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def hsic_unbiased(K, L):
    """Song et al. 2012, eq. (5), on raw (uncentred) Gram matrices."""
    n = len(K)
    K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


def cka_from(hsic, K, L):
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.fixture
def related():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 6))
    Y = np.tanh(X @ rng.normal(size=(6, 9))) + 0.3 * rng.normal(size=(40, 9))
    return X, Y


def test_hand_computed_4x2():
    # X^T Y = diag(2, 4), X^T X = diag(2, 2), Y^T Y = diag(2, 8): CKA = 20 / (sqrt(8) sqrt(68)).
    X = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
    Y = np.array([[1, 0], [0, 2], [-1, 0], [0, -2]], float)
    assert score(LinearCKA(), X, Y) == pytest.approx(5 / np.sqrt(34), rel=1e-12)


def test_linear_matches_textbook_formula(related):
    X, Y = related
    expected = cka_from(hsic_biased, X @ X.T, Y @ Y.T)
    assert score(LinearCKA(), X, Y) == pytest.approx(expected, rel=1e-10)


def test_debiased_matches_song_estimator(related):
    X, Y = related
    X = X + 3.0  # Song's estimator needs no centring; ours centres first: both must agree
    expected = cka_from(hsic_unbiased, X @ X.T, Y @ Y.T)
    assert score(DebiasedCKA(), X, Y) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("cls", [LinearCKA, DebiasedCKA])
@pytest.mark.parametrize("extra", [80, 40 * REDUCE_RATIO + 60])
def test_wide_features_use_the_same_value(cls, extra, related):
    # n < d <= REDUCE_RATIO n keeps the centred features as the factor; wider ones are reduced
    # to n columns. Either way the value is the textbook one, and the Gram route agrees.
    X, Y = related
    n = len(X)
    rng = np.random.default_rng(2)
    wide = np.hstack([Y, Y @ rng.normal(size=(9, extra)) + rng.normal(size=(n, extra))])
    d = wide.shape[1]
    factor = cls().prepare(wide).gram.factor
    assert factor.shape == ((n, d) if d <= REDUCE_RATIO * n else (n, n))
    hsic = hsic_unbiased if cls is DebiasedCKA else hsic_biased
    expected = cka_from(hsic, X @ X.T, wide @ wide.T)
    assert score(cls(), X, wide) == pytest.approx(expected, rel=1e-9)
    m = cls()
    block = m.score_block([m.prepare(X), m.prepare(wide)])
    assert block[0, 1] == pytest.approx(expected, rel=1e-9)


def test_rbf_matches_direct_kernel_computation(related):
    X, Y = related

    def centred_kernel(Z, frac):
        d2 = cdist(Z, Z, "sqeuclidean")
        sigma = frac * np.sqrt(np.median(d2))  # full n x n matrix, diagonal zeros included
        return np.exp(-d2 / (2 * sigma**2))

    for frac in (0.5, 1.0):
        expected = cka_from(hsic_biased, centred_kernel(X, frac), centred_kernel(Y, frac))
        assert score(RbfCKA(), X, Y, frac=frac) == pytest.approx(expected, rel=1e-9)


def test_rbf_bandwidth_is_per_representation(related):
    X, _ = related
    d2 = cdist(X, X, "sqeuclidean")
    state = RbfCKA().prepare(X)
    assert state.sigma == pytest.approx(0.5 * np.sqrt(np.median(d2)), rel=1e-10)
    assert RbfCKA().prepare(100 * X).sigma == pytest.approx(100 * state.sigma, rel=1e-10)


@pytest.mark.parametrize("cls", [LinearCKA, DebiasedCKA, RbfCKA])
def test_identity_rotation_scale_and_offset_invariance(cls, related):
    X, Y = related
    m = cls()
    R = ortho_group.rvs(Y.shape[1], random_state=3)
    base = score(m, X, Y)
    assert score(m, X, X) == pytest.approx(1.0, abs=1e-12)
    assert score(m, X, Y @ R) == pytest.approx(base, abs=1e-10)
    assert score(m, X, 0.01 * Y) == pytest.approx(base, abs=1e-10)
    assert score(m, 1e4 * X, Y) == pytest.approx(base, abs=1e-10)


@pytest.mark.parametrize("cls", [LinearCKA, DebiasedCKA, RbfCKA])
def test_float32_offset_of_100_changes_nothing(cls, related):
    X, Y = related
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    shifted = score(cls(), X32 + np.float32(100), Y32 + np.float32(100))
    # Only the float32 rounding of the shifted inputs (~1e-5 relative) may show.
    assert shifted == pytest.approx(score(cls(), X32, Y32), abs=1e-4)


def test_not_invariant_to_anisotropic_scaling(related):
    X, Y = related
    stretch = np.diag(np.geomspace(1, 30, Y.shape[1]))
    assert abs(score(LinearCKA(), X, Y @ stretch) - score(LinearCKA(), X, Y)) > 0.05


def test_unrelated_data_biased_is_large_debiased_near_zero():
    rng = np.random.default_rng(4)
    n, d = 30, 200
    X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    biased = score(LinearCKA(), X, Y)
    assert biased > 0.6  # the known small-n bias of the biased estimator
    assert biased == pytest.approx(expected_cka(X, Y), abs=0.05)
    assert abs(score(DebiasedCKA(), X, Y)) < 0.05


def test_expected_cka_is_the_permutation_mean():
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(25, 4)), rng.normal(size=(25, 30)) ** 2
    m = LinearCKA()
    a = m.prepare(X)
    null = [m.score(a, m.prepare(Y[rng.permutation(25)])) for _ in range(4000)]
    assert expected_cka(X, Y) == pytest.approx(np.mean(null), rel=0.02)


@pytest.mark.parametrize("cls", [LinearCKA, DebiasedCKA, RbfCKA])
def test_constant_representation_is_undefined(cls):
    X = np.full((10, 3), 0.1)  # 0.1 is not exactly representable: rounding must not leak
    with pytest.raises(MetricUndefined, match="variance|median"):
        cls().prepare(X)


def test_a_constant_feature_among_others_is_fine(related):
    X, Y = related
    padded = np.hstack([X, np.full((len(X), 1), 7.3)])
    assert score(LinearCKA(), padded, Y) == pytest.approx(score(LinearCKA(), X, Y), rel=1e-12)


def test_too_few_samples_for_the_unbiased_estimator():
    with pytest.raises(MetricUndefined, match="at least 4 samples"):
        DebiasedCKA().prepare(np.arange(6.0).reshape(3, 2))
