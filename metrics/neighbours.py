"""Neighbourhood metrics: mutual k-nearest-neighbour overlap and information imbalance.

Both compare which samples are close to which. Ties are ties, not broken by position: where
several samples tie for the last neighbour places, each gets an equal share of them, and tied
ranks are averaged, i.e. the expected value over every order of the tied samples. Similarities
and distances are computed once per distinct row and made exactly symmetric, so duplicate
samples tie exactly. The values are therefore the same whatever the order of the samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import Metric, MetricUndefined, State, centre
from zoo.metrics.cka import squared_distances


def exact_pairs(X: np.ndarray, pairwise: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`pairwise` (n x n) of the rows of X computed on the distinct rows, made exactly symmetric
    and expanded back: duplicate rows get bit-identical rows and columns whatever their
    position (a matrix product rounds by position and thread count)."""
    distinct, inverse = np.unique(X, axis=0, return_inverse=True)
    P = pairwise(distinct)
    P = (P + P.T) / 2.0
    inverse = inverse.reshape(-1)
    return P[inverse[:, None], inverse[None, :]]


def neighbour_weights(closeness: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest (largest `closeness`, diagonal excluded) as (flat indices into the
    n x n matrix, weights): 1 for a sure neighbour, and an equal share of the places left for
    the samples tied at the k-th value, so each row's weights sum to k."""
    close = closeness.copy()
    np.fill_diagonal(close, -np.inf)
    kth = -np.partition(-close, k - 1, axis=1)[:, k - 1:k]
    sure = close > kth
    tied = close == kth
    share = (k - sure.sum(1, keepdims=True)) / tied.sum(1, keepdims=True)
    weights = np.where(sure, 1.0, np.where(tied, share, 0.0)).ravel()
    index = np.flatnonzero(weights)
    return index, weights[index]


def _overlap(a: State, values: np.ndarray) -> float:
    """Sum over a's weighted neighbour pairs of `values` (n x n) at those pairs."""
    return float(a.neighbour_weights @ values.ravel()[a.neighbour_index])


def _check_k(name: str, k: int, n: int) -> None:
    if k < 1:
        raise ZooError(f"{name}: k must be >= 1, got {k}")
    if n < k + 2:
        raise MetricUndefined(f"{name} with k={k} needs at least {k + 2} samples, got {n}: with "
                              f"k >= n - 1 every other sample is a neighbour, so the value is "
                              "the same whatever the data")


def unit_rows(name: str, X: np.ndarray) -> np.ndarray:
    """Each sample scaled to unit length; an all-zero sample has no cosine (undefined)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise MetricUndefined(f"{name}: sample {int(np.argmin(norms))} is all zeros, so its "
                              "cosine similarity is undefined")
    return X / norms


def cosine_neighbours(name: str, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows, (n, k) indices of each sample's k nearest other samples by cosine
    similarity of the raw vectors, nearest first; ties by index)."""
    _check_k(name, k, len(X))
    Xn = unit_rows(name, X)
    sim = Xn @ Xn.T
    np.fill_diagonal(sim, -np.inf)
    return Xn, np.argsort(-sim, axis=1, kind="stable")[:, :k]


class MutualKNN(Metric):
    """Mutual k-NN alignment (Huh et al. 2024): mean over samples of |N_A(i) & N_B(i)| / k.

    N(i) are the k nearest other samples by cosine similarity of the raw (uncentred) feature
    vectors; default k = 10. 1 for identical neighbourhoods, about k/(n-1) for unrelated ones.
    Invariant to orthogonal transforms and per-sample scaling, not to translation.
    """

    name = "mutual-knn"
    kind = "similarity"
    symmetric = True
    invariances = ("orthogonal", "isotropic-scaling", "per-sample-scaling")
    convention = ("mean over samples of |N_A(i) & N_B(i)| / k, N(i) the k = 10 nearest other "
                  "samples by cosine similarity of the raw (uncentred) vectors; tied samples "
                  "share the last places")
    reference = ("Huh, Cheung, Wang & Isola 2024, The Platonic Representation Hypothesis (ICML)")
    description = "mutual k-nearest-neighbour overlap, cosine neighbours (k = 10)"
    defaults = {"k": 10}

    def _prepare(self, X: np.ndarray, k: int, **_: Any) -> State:
        _check_k(self.name, k, len(X))
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if not np.all(norms > 0):
            raise MetricUndefined(f"mutual-knn: sample {int(np.argmin(norms))} is all zeros, so "
                                  "its cosine similarity is undefined")
        sim = exact_pairs(X / norms, lambda rows: rows @ rows.T)
        index, weights = neighbour_weights(sim, k)
        return State(n=len(X), k=k, neighbour_index=index, neighbour_weights=weights)

    def _score(self, a: State, b: State, **_: Any) -> float:
        in_b = np.zeros(b.n * b.n)
        in_b[b.neighbour_index] = b.neighbour_weights
        return _overlap(a, in_b) / (a.n * a.k)


class InformationImbalance(Metric):
    """Information imbalance Delta(A -> B) (Glielmo et al. 2022), asymmetric, a distance.

    Delta(A -> B) = 2/n * mean over samples i and their k nearest neighbours j in A of the rank
    of j among i's neighbours in B (rank 1 = nearest; Euclidean; default k = 1). About 0 (2/n
    for k = 1) when A's neighbours are B's too (A predicts B), about 1 when A says nothing
    about B. Invariant to orthogonal transforms, isotropic scaling and translation.
    """

    name = "imbalance"
    kind = "distance"
    symmetric = False
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    convention = ("Delta(A -> B) = 2/n x mean rank in B of each sample's k = 1 nearest "
                  "neighbours in A (Euclidean, rank 1 = nearest); tied ranks averaged, tied "
                  "neighbours share the places")
    reference = ("Glielmo, Zeni, Cheng, Tamas & Laio 2022, Ranking the information content of "
                 "distance measures (PNAS Nexus)")
    description = "information imbalance Delta(A -> B), k = 1, Euclidean (both directions)"
    defaults = {"k": 1}

    def _prepare(self, X: np.ndarray, k: int, **_: Any) -> State:
        n = len(X)
        _check_k(self.name, k, n)
        from scipy.stats import rankdata

        d2 = exact_pairs(centre(X), squared_distances)
        np.fill_diagonal(d2, np.inf)  # self ranks last (n), never counted
        # tied ranks averaged are half-integers: kept doubled, as integers (2 bytes each below
        # 32768 samples)
        doubled = 2.0 * rankdata(d2, method="average", axis=1)
        ranks = doubled.astype(np.uint16 if 2 * n < 2**16 else np.uint32)
        index, weights = neighbour_weights(-d2, k)
        return State(n=n, k=k, doubled_ranks=ranks, neighbour_index=index,
                     neighbour_weights=weights)

    def _score(self, a: State, b: State, **_: Any) -> float:
        return 2.0 / a.n * _overlap(a, b.doubled_ranks) / 2.0 / (a.n * a.k)
