"""The measures ReSi ranks highest (Jaccard k-NN, second-order cosine, rank similarity, distance
correlation, aligned cosine) and the output-level ones, against public implementations: dcor,
scipy, and reference loops over sklearn's cosine neighbours written from ReSi's published
definitions (repsim itself does not install here)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import cdist, jensenshannon
from scipy.special import softmax
from scipy.stats import ortho_group

from zoo.metrics import compute
from zoo.metrics.base import MetricUndefined
from zoo.metrics.builtin import BUILTIN_METRICS, OUTPUT_METRICS
from zoo.metrics.invariance import check_invariances

# Known answers are computed in float64 by a different order of operations, so they agree to a
# few hundred units of rounding on O(1) values: 1e-12 leaves a margin of ~50 over that.
TOL = 1e-12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(70, 6))
    Y = np.tanh(X @ rng.normal(size=(6, 9))) + 0.6 * rng.normal(size=(70, 9))
    return X, Y


def sklearn_neighbours(X, k):
    """repsim's top_k_neighbors: k + 1 cosine neighbours by sklearn, the first (self) dropped."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(X).kneighbors(X)[1][:, 1:]


def test_jaccard_knn_matches_set_definition(data):
    X, Y = data
    na, nb = sklearn_neighbours(X, 10), sklearn_neighbours(Y, 10)
    expected = np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(na, nb)])
    assert compute("jaccard-knn", X, Y) == pytest.approx(expected, abs=TOL)
    assert compute("jaccard-knn", X, Y, k=4) != pytest.approx(expected, abs=1e-3)
    assert compute("jaccard-knn", X, X @ ortho_group.rvs(6, random_state=1)) == 1.0


def test_second_order_cosine_matches_definition(data):
    X, Y = data
    na, nb = sklearn_neighbours(X, 10), sklearn_neighbours(Y, 10)
    da, db = cdist(X, X, "cosine"), cdist(Y, Y, "cosine")
    expected = np.mean([1 - cdist(da[i, sorted(u)][None], db[i, sorted(u)][None], "cosine")[0, 0]
                        for i, u in enumerate(set(a) | set(b) for a, b in zip(na, nb))])
    assert compute("second-order-cosine", X, Y) == pytest.approx(expected, abs=TOL)
    assert compute("second-order-cosine", X, 3.0 * X) == pytest.approx(1.0, abs=TOL)


def test_rank_similarity_matches_definition(data):
    X, Y = data
    na, nb = sklearn_neighbours(X, 10), sklearn_neighbours(Y, 10)
    scores = []
    for a, b in zip(na, nb):
        joint = set(a) & set(b)
        norm = sum(1 / m for m in range(1, len(joint) + 1))
        total = 0.0
        for j in joint:
            ra, rb = list(a).index(j) + 1, list(b).index(j) + 1
            total += 2 / ((1 + abs(ra - rb)) * (ra + rb))
        scores.append(total / norm if joint else 0.0)
    assert compute("rank-similarity", X, Y) == pytest.approx(np.mean(scores), abs=TOL)
    assert compute("rank-similarity", X, X) == pytest.approx(1.0, abs=TOL)


def test_neighbourhood_measures_separate_related_from_unrelated(data):
    X, Y = data
    Z = np.random.default_rng(5).normal(size=X.shape)
    for name in ("jaccard-knn", "second-order-cosine", "rank-similarity"):
        assert compute(name, X, Y) > compute(name, X, Z) + 0.1, name


def test_distance_correlation_matches_dcor(data):
    dcor = pytest.importorskip("dcor")
    X, Y = data
    assert compute("distance-correlation", X, Y) == pytest.approx(
        dcor.distance_correlation(X, Y), abs=TOL)
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(15, 3)), rng.normal(size=(15, 20))
    assert compute("distance-correlation", A, B) == pytest.approx(
        dcor.distance_correlation(A, B), abs=TOL)
    with pytest.raises(MetricUndefined, match="every pair scores 1"):
        compute("distance-correlation", A[:2], B[:2])


def repsim_aligned_cosine(X, Y):
    """repsim's aligned_cossim: zero-pad the narrower side, scipy's Procrustes rotation,
    mean row cosine."""
    d = max(X.shape[1], Y.shape[1])
    Xp = np.pad(X, ((0, 0), (0, d - X.shape[1])))
    Yp = np.pad(Y, ((0, 0), (0, d - Y.shape[1])))
    R, _ = orthogonal_procrustes(Xp, Yp)
    aligned = Xp @ R
    return np.mean(np.sum(aligned * Yp, axis=1)
                   / (np.linalg.norm(aligned, axis=1) * np.linalg.norm(Yp, axis=1)))


def test_aligned_cosine_matches_scipy_procrustes(data):
    X, Y = data
    for A, B in ((X, Y), (Y, X), (X, X @ np.random.default_rng(3).normal(size=(6, 6)))):
        assert compute("aligned-cosine", A, B) == pytest.approx(repsim_aligned_cosine(A, B),
                                                                abs=TOL)
    assert compute("aligned-cosine", X, 2 * X @ ortho_group.rvs(6, random_state=4)) == \
        pytest.approx(1.0, abs=TOL)
    assert compute("aligned-cosine", X, X + 5.0) < 1 - 1e-3  # uncentred: no translation invariance
    # wider than tall (d > n): computed in the rows' own span, still repsim's value
    rng = np.random.default_rng(5)
    A, B = rng.normal(size=(12, 40)), rng.normal(size=(12, 30))
    for P, Q in ((A, B), (B, A), (A, A[:, :7])):
        assert compute("aligned-cosine", P, Q) == pytest.approx(repsim_aligned_cosine(P, Q),
                                                                abs=TOL)


def test_output_measures_match_scipy():
    rng = np.random.default_rng(6)
    A = rng.normal(size=(50, 7))
    B = A + rng.normal(scale=0.8, size=A.shape)
    expected = np.mean(jensenshannon(softmax(A, axis=1), softmax(B, axis=1), axis=1, base=2) ** 2)
    assert compute("jensen-shannon", A, B) == pytest.approx(expected, abs=TOL)
    assert compute("disagreement", A, B) == np.mean(A.argmax(1) != B.argmax(1))
    assert compute("disagreement", A, A * 3 + 2) == 0.0
    with pytest.raises(MetricUndefined, match="7 and 6 columns"):
        compute("disagreement", A, B[:, :6])


def test_output_measures_hand_case():
    logits = np.log(np.array([[0.5, 0.5], [1.0, 1e-300]]))
    other = np.log(np.array([[0.5, 0.5], [1e-300, 1.0]]))
    # row 0 identical (0); row 1 disjoint point masses: JSD = 1 bit
    assert compute("jensen-shannon", logits, other) == pytest.approx(0.5, abs=TOL)
    assert compute("disagreement", logits, other) == 0.5  # row 0 ties -> class 0 on both sides


@pytest.mark.parametrize("cls", BUILTIN_METRICS[-5:] + OUTPUT_METRICS, ids=lambda c: c.name)
def test_new_measures_hold_their_declared_invariances(cls):
    assert check_invariances(cls()) == []


def test_a_false_declaration_would_be_caught():
    """The check can fail for these measures: translation moves the uncentred ones."""
    for cls in BUILTIN_METRICS[-5:-2] + BUILTIN_METRICS[-1:]:
        m = cls()
        m.invariances = m.invariances + ("translation",)
        assert any("translation" in f for f in check_invariances(m)), m.name
