"""Ties handled as ties: RSA at the exact-tie value whatever the BLAS thread count, and
neighbourhood metrics that do not depend on the order of the samples."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.metrics import compute


def with_duplicates(seed: int = 0, distinct: int = 25, copies: int = 3, d: int = 12
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Paired representations of `distinct` samples each present `copies` times (shuffled), as
    repeated images or padded tokens give: duplicates tie exactly in both."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(distinct, d))
    other = np.tanh(base @ rng.normal(size=(d, d + 3))) + 0.3 * rng.normal(size=(distinct, d + 3))
    index = rng.permutation(np.repeat(np.arange(distinct), copies))
    return base[index] * 7.0 + 40.0, other[index]


def exact_rdm(X: np.ndarray, rdm: str) -> np.ndarray:
    """The RDM's upper triangle from scipy's pdist over the distinct rows, duplicates at exactly
    0 and exactly as far as each other from every other row (an independent reference)."""
    from scipy.spatial.distance import pdist, squareform

    distinct, inverse = np.unique(X, axis=0, return_inverse=True)
    metric = {"correlation": "correlation", "euclidean": "euclidean",
              "squared-euclidean": "sqeuclidean"}[rdm]
    D = squareform(pdist(distinct, metric))
    inverse = inverse.reshape(-1)
    return D[inverse[:, None], inverse[None, :]][np.triu_indices(len(X), k=1)]


@pytest.mark.parametrize("rdm", ["correlation", "euclidean", "squared-euclidean"])
@pytest.mark.parametrize("compare", ["spearman", "kendall"])
def test_rsa_with_duplicates_is_the_exact_tie_value(rdm, compare):
    """Before, duplicates' distances differed in the last bits by their position, so averaged
    ranks split real ties (RSA off by up to 1.2e-5). Now within float64 rounding of the
    reference with exact ties (ranks are exact; only the final correlation rounds)."""
    from scipy.stats import kendalltau, spearmanr

    X, Y = with_duplicates()
    a, b = exact_rdm(X, rdm), exact_rdm(Y, rdm)
    reference = (spearmanr(a, b).statistic if compare == "spearman"
                 else kendalltau(a, b).statistic)
    value = compute("rsa", X, Y, rdm=rdm, compare=compare)
    assert value == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("compare", ["spearman", "kendall"])
def test_rsa_does_not_depend_on_the_blas_thread_count(compare):
    from threadpoolctl import threadpool_limits

    X, Y = with_duplicates(seed=1, distinct=60, d=48)
    values = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            values.append(compute("rsa", X, Y, compare=compare))
    assert values[0] == values[1]


def test_mutual_knn_shares_tied_places_known_answer():
    """k = 1, cosine. A: samples 0 and 1 equal, 2 and 3 orthogonal to everything; B: 1 and 2
    equal. Tied samples share the neighbour place: overlaps 1/3, 0, 1/3, 3 x 1/9 -> mean 1/4
    (ties broken by index gave 1/2, and another order of the samples another value)."""
    A = np.array([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    B = np.array([[1.0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        assert compute("mutual-knn", A[order], B[order], k=1) == pytest.approx(0.25, abs=1e-15)


def test_imbalance_averages_tied_ranks_known_answer():
    """k = 1. A on a line at 0, 0, 2, 5; B at 0, 1, 2, 3. Sample 2's nearest in A is a tie
    (0 and 1, weight 1/2 each); B's ranks are averaged (1.5 for ties). Rank sum
    1 + 1.5 + (3 + 1.5) / 2 + 1 = 5.75, Delta = 2/4 x 5.75/4 = 0.71875."""
    A = np.array([[0.0], [0], [2], [5]])
    B = np.array([[0.0], [1], [2], [3]])
    for order in ([0, 1, 2, 3], [3, 1, 2, 0], [2, 3, 0, 1]):
        assert compute("imbalance", A[order], B[order], k=1) == pytest.approx(0.71875,
                                                                              abs=1e-15)


@pytest.mark.parametrize("metric, k", [("mutual-knn", 5), ("imbalance", 1), ("imbalance", 3)])
def test_neighbourhood_metrics_do_not_depend_on_sample_order(metric, k):
    """Samples duplicated in A but not in B (B adds per-sample noise): which duplicate is A's
    neighbour followed the samples' order, and reordering moved these by up to 1.8e-3."""
    X, Y = with_duplicates(seed=2)
    Y = Y + 0.05 * np.random.default_rng(3).normal(size=Y.shape)
    base = compute(metric, X, Y, k=k)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(X))
        assert compute(metric, X[order], Y[order], k=k) == pytest.approx(base, abs=1e-12)
