"""k-NN neighbourhood measures that ReSi (Klabunde et al. 2025) ranks highest for vision models:
Jaccard overlap, second-order cosine similarity and rank similarity.

All three use each sample's k = 10 nearest other samples by cosine similarity of the raw
(uncentred) vectors, as ReSi's `repsim` does (sklearn's cosine neighbours, self excluded); ties
are broken by sample index. Each pair costs O(n k^2) (plus O(n k d) for second-order cosine), so
no n x n matrix is kept per layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.metrics.base import Metric, MetricUndefined, State
from zoo.metrics.neighbours import cosine_neighbours

KNN_INVARIANCES = ("orthogonal", "isotropic-scaling", "per-sample-scaling")
RESI = ("Klabunde, Wald, Schumacher, Markert, Strohmaier & Lemmerich 2025, ReSi: A Comprehensive "
        "Benchmark for Representational Similarity Measures (ICLR)")
BLOCK_ROWS = 2**22  # gathered neighbour vectors per chunk of second-order cosine (32 MB)


class _CosineKNN(Metric):
    """Shared preparation: unit rows and each sample's k nearest cosine neighbours."""

    kind = "similarity"
    symmetric = True
    invariances = KNN_INVARIANCES
    defaults = {"k": 10}

    def _prepare(self, X: np.ndarray, k: int, **_: Any) -> State:
        unit, neighbours = cosine_neighbours(self.name, X, k)
        return State(n=len(X), unit=unit, neighbours=neighbours)


def shared(a: State, b: State) -> np.ndarray:
    """(n, k, k) booleans: a's p-th neighbour of sample i is b's q-th neighbour of i."""
    return a.neighbours[:, :, None] == b.neighbours[:, None, :]


class JaccardKNN(_CosineKNN):
    """Jaccard similarity of k-NN sets: mean over samples of |N_A(i) & N_B(i)| / |N_A(i) | N_B(i)|.

    Cosine neighbours of the raw vectors, k = 10 (ReSi's `JaccardSimilarity`). 1 for identical
    neighbourhoods; about k / (2 (n - 1)) for unrelated ones. `mutual-knn` divides the same
    overlap by k instead of by the union.
    """

    name = "jaccard-knn"
    convention = ("mean over samples of |N_A(i) & N_B(i)| / |N_A(i) | N_B(i)|, N(i) the k = 10 "
                  "nearest other samples by cosine similarity of the raw vectors (ReSi's repsim); "
                  "ties by index")
    reference = ("Wang, Rao, Guo, Wang, Liu & Guan 2020, Towards Understanding the Instability of "
                 "Network Embedding (IEEE TKDE); convention of " + RESI)
    description = "Jaccard overlap of k-NN sets, cosine neighbours (k = 10)"

    def _score(self, a: State, b: State, k: int, **_: Any) -> float:
        common = shared(a, b).sum(axis=(1, 2))
        return float(np.mean(common / (2 * k - common)))


class SecondOrderCosine(_CosineKNN):
    """Second-order cosine similarity (Hamilton et al. 2016) in ReSi's convention.

    For each sample i, the union U(i) of its k nearest cosine neighbours in A and in B; the vectors
    of cosine distances (1 - cos) from i to the members of U(i), one in A and one in B; their
    cosine similarity; the mean over samples. Hamilton et al. compared cosine similarities where
    ReSi's `repsim` compares cosine distances; zoo follows repsim.
    """

    name = "second-order-cosine"
    convention = ("mean over samples i of cos(d_A(i, U(i)), d_B(i, U(i))), d the cosine distance "
                  "1 - cos of the raw vectors, U(i) the union of i's k = 10 cosine neighbours in A "
                  "and in B (ReSi's repsim; Hamilton et al. used similarities)")
    reference = ("Hamilton, Leskovec & Jurafsky 2016, Cultural Shift or Linguistic Drift? "
                 "Comparing Two Computational Measures of Semantic Change (EMNLP); convention of "
                 + RESI)
    description = "second-order cosine of distances to the union of k-NN sets (k = 10)"

    def _score(self, a: State, b: State, k: int, **_: Any) -> float:
        # candidates: A's neighbours, then B's neighbours that are not A's (the union, once each)
        candidates = np.concatenate([a.neighbours, b.neighbours], axis=1)
        member = np.concatenate([np.ones_like(a.neighbours, dtype=bool),
                                 ~shared(a, b).any(axis=1)], axis=1)
        rows = max(1, BLOCK_ROWS // (2 * k * max(a.unit.shape[1], b.unit.shape[1])))
        total = 0.0
        for lo in range(0, a.n, rows):
            idx = candidates[lo:lo + rows]
            keep = member[lo:lo + rows]
            da = (1.0 - np.einsum("id,ijd->ij", a.unit[lo:lo + rows], a.unit[idx])) * keep
            db = (1.0 - np.einsum("id,ijd->ij", b.unit[lo:lo + rows], b.unit[idx])) * keep
            norms = np.linalg.norm(da, axis=1) * np.linalg.norm(db, axis=1)
            if not np.all(norms > 0):
                i = lo + int(np.argmin(norms))
                raise MetricUndefined(f"{self.name}: every neighbour of sample {i} points the "
                                      "same way as it (cosine distance 0), so the cosine of its "
                                      "distance vectors is undefined")
            total += float(np.sum(np.sum(da * db, axis=1) / norms))
        return total / a.n


class RankSimilarity(_CosineKNN):
    """Rank similarity (Wang et al. 2020) of k-NN lists, in ReSi's convention.

    For each sample i and each j among both its k nearest neighbours in A (rank r_A, 1 = nearest)
    and in B (rank r_B): 2 / ((1 + |r_A - r_B|)(r_A + r_B)); summed over such j, divided by
    sum_{m=1}^{K_i} 1/m for K_i shared neighbours (0 if none), then averaged over samples. 1 for
    identical ordered neighbourhoods.
    """

    name = "rank-similarity"
    convention = ("mean over i of sum_{j in N_A(i) & N_B(i)} 2 / ((1 + |r_A - r_B|)(r_A + r_B)) / "
                  "sum_{m<=K_i} 1/m, ranks r in the k = 10 cosine neighbour lists of the raw "
                  "vectors, K_i = |N_A(i) & N_B(i)|, 0 where K_i = 0 (ReSi's repsim)")
    reference = ("Wang, Rao, Guo, Wang, Liu & Guan 2020, Towards Understanding the Instability of "
                 "Network Embedding (IEEE TKDE); convention of " + RESI)
    description = "rank similarity of k-NN lists, cosine neighbours (k = 10)"

    def _score(self, a: State, b: State, k: int, **_: Any) -> float:
        hit = shared(a, b)  # hit[i, p, q]: same neighbour at rank p + 1 in A and q + 1 in B
        rank = np.arange(1, k + 1, dtype=np.float64)
        ra, rb = rank[:, None], rank[None, :]
        weight = 2.0 / ((1.0 + np.abs(ra - rb)) * (ra + rb))
        scores = (hit * weight).sum(axis=(1, 2))
        joint = hit.sum(axis=(1, 2))
        harmonic = np.concatenate([[1.0], np.cumsum(1.0 / rank)])  # H(0) unused (score 0)
        return float(np.mean(scores / harmonic[joint]))
