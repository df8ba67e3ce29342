"""Neighbourhood metrics: mutual k-nearest-neighbour overlap and information imbalance.

Both compare which samples are close to which; ties in similarity or distance are broken by
sample index (stable sort), so results are deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import Metric, MetricUndefined, State, centre
from zoo.metrics.cka import squared_distances


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
                  "samples by cosine similarity of the raw (uncentred) vectors; ties by index")
    reference = ("Huh, Cheung, Wang & Isola 2024, The Platonic Representation Hypothesis (ICML)")
    description = "mutual k-nearest-neighbour overlap, cosine neighbours (k = 10)"
    defaults = {"k": 10}

    def _prepare(self, X: np.ndarray, k: int, **_: Any) -> State:
        return State(n=len(X), neighbours=cosine_neighbours(self.name, X, k)[1])

    def _score(self, a: State, b: State, **_: Any) -> float:
        rows = np.arange(a.n)[:, None]
        in_a = np.zeros((a.n, a.n), dtype=bool)
        in_a[rows, a.neighbours] = True
        return float(in_a[rows, b.neighbours].sum() / b.neighbours.size)


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
                  "neighbours in A (Euclidean, rank 1 = nearest); ties by index")
    reference = ("Glielmo, Zeni, Cheng, Tamas & Laio 2022, Ranking the information content of "
                 "distance measures (PNAS Nexus)")
    description = "information imbalance Delta(A -> B), k = 1, Euclidean (both directions)"
    defaults = {"k": 1}

    def _prepare(self, X: np.ndarray, k: int, **_: Any) -> State:
        n = len(X)
        _check_k(self.name, k, n)
        d2 = squared_distances(centre(X))
        np.fill_diagonal(d2, np.inf)
        order = np.argsort(d2, axis=1, kind="stable")[:, : n - 1]  # self (inf) sorts last
        ranks = np.zeros((n, n), dtype=np.uint16 if n < 2**16 else np.int64)
        ranks[np.arange(n)[:, None], order] = np.arange(1, n)
        return State(n=n, ranks=ranks, neighbours=order[:, :k])

    def _score(self, a: State, b: State, **_: Any) -> float:
        picked = b.ranks[np.arange(a.n)[:, None], a.neighbours]
        return float(2.0 / a.n * picked.mean(dtype=np.float64))
