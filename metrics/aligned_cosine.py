"""Aligned cosine similarity (Hamilton et al. 2016): mean per-sample cosine after the
orthogonal Procrustes rotation of A onto B, on the raw (uncentred) vectors as ReSi's repsim."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.metrics.base import Metric, State, svd_basis
from zoo.metrics.neighbours import unit_rows


class AlignedCosine(Metric):
    """Mean over samples of cos(a_i Q, b_i), Q the orthogonal map minimising ||A Q - B||_F.

    As repsim, the narrower side is padded with zero features and nothing is centred. With
    A^T B = U S V^T (components below numerical rank dropped), a_i Q . b_i = a_i U V^T b_i and
    ||a_i Q|| = ||a_i||; when A^T B has full rank min(d_A, d_B) this is repsim's value exactly.
    Invariant to orthogonal transforms and isotropic scaling of either side, not to translation
    or per-sample scaling (they change the fitted rotation).
    """

    name = "aligned-cosine"
    kind = "similarity"
    symmetric = True
    invariances = ("orthogonal", "isotropic-scaling")
    convention = ("mean_i cos(a_i Q, b_i), Q = argmin ||A Q - B||_F over orthogonal Q (narrower "
                  "side zero-padded), raw uncentred vectors (ReSi's repsim aligned_cossim)")
    reference = ("Hamilton, Leskovec & Jurafsky 2016, Diachronic Word Embeddings Reveal "
                 "Statistical Laws of Semantic Change (ACL); convention of Klabunde et al. 2025, "
                 "ReSi (ICLR)")
    description = "mean per-sample cosine after orthogonal Procrustes alignment"
    min_samples = 3
    few_samples = ("with 2 samples the rotation is fitted to the plane of the 2 samples, so the "
                   "value is just their angle and norm ratio, not a fit to a representation")

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        unit_rows(self.name, X)  # an all-zero sample has no cosine: undefined, as in repsim
        if X.shape[1] > X.shape[0]:
            # Wider than tall: the rows' coordinates in their own span (X^T = Q R, X Q = R^T),
            # an isometry, so the same value from n x n work instead of a d x d SVD per pair.
            X = np.linalg.qr(X.T)[1].T
        return State(n=len(X), raw=X, norms=np.linalg.norm(X, axis=1))

    def _score(self, a: State, b: State, **_: Any) -> float:
        U, _, Vt = svd_basis(a.raw.T @ b.raw)
        aligned = (a.raw @ U) @ Vt
        return float(np.mean(np.sum(aligned * b.raw, axis=1) / (a.norms * b.norms)))
