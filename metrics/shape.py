"""Orthogonal Procrustes and the generalised shape metrics (partial whitening alpha).

With centred X = U S V^T, the partially whitened representation of Williams et al. (2021) is
X (alpha I + (1 - alpha) (X^T X)^(-1/2)) = U diag(alpha s + 1 - alpha) V^T. After optimal
rotation the cosine between two such representations is ||Wa^T Wb||_* / (||Wa||_F ||Wb||_F)
with W = U diag(alpha s + 1 - alpha) (V^T drops out), and the shape metric is its arccos.
alpha = 1 is orthogonal Procrustes; alpha = 0 whitens fully (arccos of the mean canonical
correlation when both sides have the same rank).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import CENTRED_PAIR, Metric, MetricUndefined, State, centre, svd_basis
from zoo.metrics.cca import check_dimensions


def aligned_cosine(a: State, b: State) -> float:
    """cos of the angle between two prepared representations after optimal rotation (<= 1)."""
    nuclear = np.linalg.svd(a.coords.T @ b.coords, compute_uv=False).sum()
    return float(nuclear / (np.linalg.norm(a.coords) * np.linalg.norm(b.coords)))


class _Aligned(Metric):
    """Shared preparation: partially whitened principal coordinates of the centred data."""

    symmetric = True
    angular: ClassVar[bool] = True
    min_samples = 3
    few_samples = CENTRED_PAIR

    def _prepare(self, X: np.ndarray, alpha: float = 1.0, **_: Any) -> State:
        if not 0 <= alpha <= 1:
            raise ZooError(f"{self.name}: alpha must be in [0, 1], got {alpha}")
        U, s, _ = svd_basis(centre(X), centred=True)
        if not len(s):
            raise MetricUndefined(f"{self.name}: the representation has no variance (every "
                                  "feature constant)")
        return State(n=len(X), coords=U * (alpha * s + (1.0 - alpha)))

    def _score(self, a: State, b: State, alpha: float = 1.0, **_: Any) -> float:
        if alpha == 0:  # fully whitened: the mean canonical correlation, with its degeneracy
            check_dimensions(self.name, a.n, a.coords.shape[1], b.coords.shape[1])
        cos = aligned_cosine(a, b)
        # cos <= 1 exactly (von Neumann's trace inequality); only rounding can push it above.
        return float(np.arccos(min(cos, 1.0))) if self.angular else cos


class Procrustes(_Aligned):
    """Orthogonal Procrustes similarity ||Xc^T Yc||_* / (||Xc||_F ||Yc||_F) on centred data.

    1 for a rotated and/or isotropically scaled copy; invariant to orthogonal transforms,
    isotropic scaling and translation, not to other linear maps. Widths may differ.
    """

    name = "procrustes"
    kind = "similarity"
    angular = False
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    convention = "||Xc^T Yc||_* / (||Xc||_F ||Yc||_F) on column-centred data"
    reference = ("Schonemann 1966; as a similarity in Ding, Denain & Steinhardt 2021, Grounding "
                 "Representation Similarity with Statistical Testing (NeurIPS)")
    description = "orthogonal Procrustes similarity ||X^T Y||_* / (||X||_F ||Y||_F)"


class ProcrustesAngular(_Aligned):
    """Angular Procrustes distance: arccos of the `procrustes` similarity, in [0, pi/2].

    A proper metric on shapes (Williams et al. 2021, alpha = 1); same invariances as
    `procrustes`.
    """

    name = "procrustes-angular"
    kind = "distance"
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    convention = "arccos(||Xc^T Yc||_* / (||Xc||_F ||Yc||_F)), the shape metric at alpha = 1"
    reference = ("Williams, Kunz, Kornblith & Linderman 2021, Generalized Shape Metrics on Neural "
                 "Representations (NeurIPS)")
    description = "arccos of the Procrustes similarity (angular shape distance)"


class Shape(_Aligned):
    """Generalised shape metric with partial whitening `alpha` (Williams et al. 2021), angular.

    alpha = 1: Procrustes (rotations only); alpha = 0: full whitening (any invertible linear map,
    CCA-like). Default 0.5, between the two. Follows the authors' netrep (whitening from X^T X of
    the centred data), so for 0 < alpha < 1 it is NOT invariant to isotropic scaling; components
    below numerical rank are dropped rather than whitened up.
    """

    name = "shape"
    kind = "distance"
    invariances = ("orthogonal", "translation")
    invariances_with = (({"alpha": 0.0}, ("orthogonal", "isotropic-scaling", "translation",
                                          "invertible-linear")),
                        ({"alpha": 1.0}, ("orthogonal", "isotropic-scaling", "translation")))
    convention = ("arccos(||Wa^T Wb||_* / (||Wa||_F ||Wb||_F)), W = U diag(alpha s + 1 - alpha) "
                  "from the SVD U diag(s) V^T of the centred data (netrep's partial whitening); "
                  "for 0 < alpha < 1 the value depends on the data's scale and on n")
    reference = ("Williams, Kunz, Kornblith & Linderman 2021, Generalized Shape Metrics on Neural "
                 "Representations (NeurIPS)")
    description = "angular shape distance after partial whitening alpha (default 0.5)"
    defaults = {"alpha": 0.5}
