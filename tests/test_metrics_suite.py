"""CCA family, Procrustes/shape, RSA, linreg, mutual k-NN and information imbalance."""

import re

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import kendalltau, ortho_group, pearsonr, spearmanr

from zoo.errors import UnknownNameError, ZooError
from zoo.metrics.base import KINDS, MetricUndefined, describe
from zoo.metrics.builtin import BUILTIN_METRICS, OUTPUT_METRICS, register_metrics
from zoo.metrics.cca import CCA, PWCCA, SVCCA
from zoo.metrics.invariance import INVARIANCES
from zoo.metrics.linreg import LinearPredictivity, fold_indices
from zoo.metrics.neighbours import InformationImbalance, MutualKNN
from zoo.metrics.rsa import RSA
from zoo.metrics.shape import Procrustes, ProcrustesAngular, Shape


def score(metric, X, Y, **params):
    return metric.score(metric.prepare(X, **params), metric.prepare(Y, **params), **params)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    Y = np.tanh(X @ rng.normal(size=(6, 8))) + 0.5 * rng.normal(size=(80, 8))
    return X, Y


def rotate(X, seed=1):
    return X @ ortho_group.rvs(X.shape[1], random_state=seed)


# --- CCA family ----------------------------------------------------------------------------

def test_cca_hand_case_and_invertible_invariance(data):
    X, Y = data
    # Y = X A for invertible A spans the same space: every canonical correlation is 1.
    A = np.random.default_rng(2).normal(size=(6, 6))
    assert score(CCA(), X, X @ A + 5.0) == pytest.approx(1.0, abs=1e-10)
    # One shared column s: canonical correlations are 1 and the correlation of u and v after
    # removing s from each (the second pair lives in the complements of s).
    rng = np.random.default_rng(3)
    s, u, v = rng.normal(size=(3, 200))
    Xw = np.column_stack([s, u])
    Yw = np.column_stack([s, v + 0.5 * u])
    ru = u - np.polyval(np.polyfit(s, u, 1), s)
    rv = Yw[:, 1] - np.polyval(np.polyfit(s, Yw[:, 1], 1), s)
    expected = (1.0 + abs(pearsonr(ru, rv).statistic)) / 2
    assert score(CCA(), Xw, Yw) == pytest.approx(expected, rel=1e-9)


def test_cca_undefined_cases():
    rng = np.random.default_rng(4)
    with pytest.raises(MetricUndefined, match="more samples than features"):
        CCA().prepare(rng.normal(size=(5, 5)))
    X = rng.normal(size=(20, 3))
    X[:, 1] = 2.5
    with pytest.raises(MetricUndefined, match="rank 2"):
        CCA().prepare(X)


def test_svcca_rotated_copy_scores_one_and_drops_noise_directions(data):
    X, _ = data
    assert score(SVCCA(), X, rotate(X)) == pytest.approx(1.0, abs=1e-10)
    rng = np.random.default_rng(5)
    signal = rng.normal(size=(80, 2)) * [10, 5]
    noisy = np.hstack([signal, 1e-3 * rng.normal(size=(80, 4))])
    state = SVCCA().prepare(noisy)
    assert state.basis.shape[1] == 2  # 99% of the variance lives in 2 directions
    # Plain CCA sees the noise directions (correlations near 0) and scores much lower.
    other = np.hstack([signal @ ortho_group.rvs(2, random_state=6), rng.normal(size=(80, 4))])
    assert score(SVCCA(), noisy, other) == pytest.approx(1.0, abs=1e-3)
    assert score(CCA(), noisy, other) < 0.6


def test_svcca_variance_parameter_is_validated(data):
    with pytest.raises(ZooError, match="variance"):
        SVCCA().prepare(data[0], variance=1.5)


def test_pwcca_weights_follow_the_smaller_side(data):
    X, Y = data
    assert score(PWCCA(), X, rotate(X)) == pytest.approx(1.0, abs=1e-10)
    # Independent check of the weighting: canonical variates from scipy-free whitening.
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Wx = np.linalg.inv(np.linalg.cholesky(Xc.T @ Xc)).T
    Wy = np.linalg.inv(np.linalg.cholesky(Yc.T @ Yc)).T
    P, rho, _ = np.linalg.svd((Xc @ Wx).T @ (Yc @ Wy))
    h = Xc @ Wx @ P  # orthonormal canonical variates on X (6 features < 8)
    weights = np.abs(h.T @ Xc).sum(axis=1)
    assert score(PWCCA(), X, Y) == pytest.approx(weights @ rho / weights.sum(), rel=1e-9)
    assert score(PWCCA(), Y, X) == pytest.approx(score(PWCCA(), X, Y), rel=1e-12)


# --- Procrustes and shape --------------------------------------------------------------------

def test_procrustes_hand_case():
    X = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
    Y = np.array([[1, 0], [0, 2], [-1, 0], [0, -2]], float)
    # ||X^T Y||_* = 2 + 4, ||X||_F = 2, ||Y||_F = sqrt(10).
    assert score(Procrustes(), X, Y) == pytest.approx(3 / np.sqrt(10), rel=1e-12)
    assert score(ProcrustesAngular(), X, Y) == pytest.approx(np.arccos(3 / np.sqrt(10)))


def test_procrustes_invariances(data):
    X, Y = data
    base = score(Procrustes(), X, Y)
    assert score(Procrustes(), X, 3 * rotate(X) + 1) == pytest.approx(1.0, abs=1e-12)
    assert score(ProcrustesAngular(), X, rotate(X)) == pytest.approx(0.0, abs=1e-6)
    assert score(Procrustes(), X, 0.01 * rotate(Y, 7)) == pytest.approx(base, abs=1e-12)
    stretch = np.diag(np.geomspace(1, 20, 8))
    assert abs(score(Procrustes(), X, Y @ stretch) - base) > 0.05


def test_shape_metric_limits(data):
    X, Y = data
    assert score(Shape(), X, Y, alpha=1.0) == pytest.approx(score(ProcrustesAngular(), X, Y))
    # Full whitening: the arccos of the mean canonical correlation (equal ranks: 6 and 6).
    Y6 = Y[:, :6]
    assert score(Shape(), X, Y6, alpha=0.0) == pytest.approx(np.arccos(score(CCA(), X, Y6)))
    A = np.random.default_rng(8).normal(size=(6, 6))
    assert score(Shape(), X, X @ A, alpha=0.0) == pytest.approx(0.0, abs=1e-6)
    assert score(Shape(), X, X @ A, alpha=0.5) > 0.05  # partial whitening: not any linear map
    assert score(Shape(), X, rotate(X), alpha=0.5) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ZooError, match="alpha"):
        Shape().prepare(X, alpha=2.0)


# --- RSA -------------------------------------------------------------------------------------

def correlation_rdm(X):
    return pdist(X, "correlation")


def test_rsa_matches_scipy_for_each_option(data):
    X, Y = data
    assert score(RSA(), X, Y) == pytest.approx(
        spearmanr(correlation_rdm(X), correlation_rdm(Y)).statistic, rel=1e-10)
    assert score(RSA(), X, Y, compare="pearson") == pytest.approx(
        pearsonr(correlation_rdm(X), correlation_rdm(Y)).statistic, rel=1e-10)
    assert score(RSA(), X, Y, compare="kendall") == pytest.approx(
        kendalltau(correlation_rdm(X), correlation_rdm(Y)).statistic, rel=1e-10)
    assert score(RSA(), X, Y, rdm="euclidean") == pytest.approx(
        spearmanr(pdist(X), pdist(Y)).statistic, rel=1e-10)
    # rsatoolbox's default 'euclidean' RDM: squared distances / d (the factor changes nothing)
    squared = pearsonr(pdist(X, "sqeuclidean") / X.shape[1],
                       pdist(Y, "sqeuclidean") / Y.shape[1]).statistic
    assert score(RSA(), X, Y, rdm="squared-euclidean", compare="pearson") == pytest.approx(
        squared, rel=1e-10)
    plain = score(RSA(), X, Y, rdm="euclidean", compare="pearson")
    assert abs(plain - squared) > 1e-3  # Pearson sees whether distances are squared
    assert score(RSA(), X, Y, rdm="squared-euclidean") == pytest.approx(
        score(RSA(), X, Y, rdm="euclidean"), rel=1e-12)  # ranks do not


def test_rsa_invariances_depend_on_the_rdm(data):
    X, Y = data
    euclid = score(RSA(), X, Y, rdm="euclidean")
    assert score(RSA(), X, 0.01 * rotate(Y) + 4, rdm="euclidean") == pytest.approx(euclid,
                                                                                 abs=1e-12)
    stretch = np.diag(np.geomspace(1, 20, 8))
    assert abs(score(RSA(), X, Y @ stretch, rdm="euclidean") - euclid) > 0.05
    # Correlation distance: per-sample scale and offset are free, a rotation is not.
    corr = score(RSA(), X, Y)
    per_sample = Y * np.linspace(1, 3, 80)[:, None] + np.linspace(-2, 2, 80)[:, None]
    assert score(RSA(), X, per_sample) == pytest.approx(corr, abs=1e-12)
    assert score(RSA(), X, X) == pytest.approx(1.0)
    assert score(RSA(), X, rotate(X)) < 0.95


def test_rsa_undefined_cases():
    rng = np.random.default_rng(9)
    with pytest.raises(MetricUndefined, match="at least 2 features"):
        RSA().prepare(rng.normal(size=(10, 1)))
    X = rng.normal(size=(10, 3))
    X[4] = 1.5
    with pytest.raises(MetricUndefined, match="sample 4"):
        RSA().prepare(X)
    with pytest.raises(MetricUndefined, match="equal"):
        RSA().prepare(np.eye(4), rdm="euclidean")  # every pair at distance sqrt(2)
    with pytest.raises(UnknownNameError, match="cosine"):
        RSA().prepare(X, rdm="cosine")


# --- linreg ----------------------------------------------------------------------------------

def test_linreg_with_fixed_penalty_matches_direct_ridge(data):
    X, Y = data
    alpha = 0.1
    sse = sst = 0.0
    for test in fold_indices(80, 5, 0):
        train = np.setdiff1d(np.arange(80), test)
        mx, my = X[train].mean(0), Y[train].mean(0)
        Xc = X[train] - mx
        lam = alpha * np.mean(np.linalg.svd(Xc, compute_uv=False) ** 2)
        W = np.linalg.solve(Xc.T @ Xc + lam * np.eye(6), Xc.T @ (Y[train] - my))
        sse += np.sum((Y[test] - (X[test] - mx) @ W - my) ** 2)
        sst += np.sum((Y[test] - my) ** 2)
    assert score(LinearPredictivity(), X, Y, alpha=alpha) == pytest.approx(1 - sse / sst,
                                                                          rel=1e-10)


def test_linreg_known_answers_and_asymmetry(data):
    X, _ = data
    rng = np.random.default_rng(10)
    noise = rng.normal(size=(80, 3))
    B = X[:, :3] @ rng.normal(size=(3, 3)) + 0.1 * noise
    wide = np.hstack([X, rng.normal(size=(80, 4))])
    assert score(LinearPredictivity(), X, B) > 0.97  # B is a linear function of X, little noise
    assert score(LinearPredictivity(), X, rng.normal(size=(80, 3))) < 0.05
    # Asymmetric: X[:, :2] is inside `wide`, but `wide` is not predictable from X[:, :2].
    assert score(LinearPredictivity(), wide, X[:, :2]) > 0.99
    assert score(LinearPredictivity(), X[:, :2], wide) < 0.4


def test_linreg_undefined_and_invalid():
    rng = np.random.default_rng(11)
    with pytest.raises(MetricUndefined, match="at least 2 x folds"):
        LinearPredictivity().prepare(rng.normal(size=(9, 2)))
    with pytest.raises(ZooError, match="folds"):
        LinearPredictivity().prepare(rng.normal(size=(20, 2)), folds=1)
    m = LinearPredictivity()
    with pytest.raises(MetricUndefined, match="no variance"):
        m.score(m.prepare(rng.normal(size=(20, 2))), m.prepare(np.ones((20, 2))))


# --- neighbourhoods --------------------------------------------------------------------------

def test_mutual_knn_hand_case():
    def circle(angles):  # unit vectors: the cosine neighbour is the nearest angle
        return np.column_stack([np.cos(angles), np.sin(angles)])

    A = circle([0.0, 0.1, 0.3, 0.6, 1.0, 1.5])  # k = 1: 0->1, 1->0, 2->1, 3->2, 4->3, 5->4
    B = circle([0.0, 0.1, 1.5, 0.6, 1.0, 0.3])  # k = 1: 0->1, 1->0, 2->4, 3->5, 4->3, 5->1
    assert score(MutualKNN(), A, B, k=1) == pytest.approx(3 / 6)


def test_mutual_knn_identity_rotation_and_unrelated(data):
    X, _ = data
    assert score(MutualKNN(), X, rotate(X)) == pytest.approx(1.0)
    Z = np.random.default_rng(12).normal(size=X.shape)
    assert score(MutualKNN(), X, Z) < 0.3  # chance level is about k / (n - 1) = 0.13
    with pytest.raises(MetricUndefined, match="at least 12 samples"):
        MutualKNN().prepare(X[:10])
    with pytest.raises(MetricUndefined, match="all zeros"):
        MutualKNN().prepare(np.vstack([X[:20], np.zeros((1, 6))]))


def test_information_imbalance_known_answers(data):
    X, _ = data
    n = len(X)
    assert score(InformationImbalance(), X, 5 * rotate(X) + 2) == pytest.approx(2 / n)
    Z = np.random.default_rng(13).normal(size=(n, 6))
    assert score(InformationImbalance(), X, Z) == pytest.approx(1.0, abs=0.15)
    # Two coordinates predict one of them much better than the reverse.
    assert score(InformationImbalance(), X[:, :2], X[:, :1]) < 0.3 < score(
        InformationImbalance(), X[:, :1], X[:, :2])


def test_information_imbalance_hand_case():
    A = np.array([[0.0], [1.0], [3.0], [7.0]])
    B = np.array([[0.0], [5.0], [1.0], [2.0]])
    # A's nearest neighbours: 0->1, 1->0, 2->1, 3->2. Ranks in B of those:
    # 0: B-dists to 1,2,3 = 5,1,2 -> neighbour 1 has rank 3; 1: to 0,2,3 = 5,4,3 -> 0 rank 3;
    # 2: to 0,1,3 = 1,4,1 -> 1 rank 3; 3: to 0,1,2 = 2,3,1 -> 2 rank 1.
    assert score(InformationImbalance(), A, B) == pytest.approx(2 / 4 * (3 + 3 + 3 + 1) / 4)


# --- protocol --------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", BUILTIN_METRICS + OUTPUT_METRICS, ids=lambda c: c.name)
def test_every_metric_states_what_it_is(cls):
    info = describe(cls())
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", info["name"])
    assert info["kind"] in KINDS and isinstance(info["symmetric"], bool)
    assert all(info[k] for k in ("invariances", "reference", "convention", "description"))
    assert set(info["invariances"]) <= set(INVARIANCES)
    assert cls.__doc__ and len(cls.__doc__.strip()) > 80  # the convention is documented


def test_builtin_plugin_registers_every_metric():
    registered = []
    register_metrics(registered.append)
    assert sorted(m.name for m in registered) == sorted(c.name for c in BUILTIN_METRICS
                                                        + OUTPUT_METRICS)
