"""Canonical correlation family: mean CCA, SVCCA and projection-weighted CCA.

Each representation is reduced once to an orthonormal basis of its centred column space; the
canonical correlations of a pair are the singular values of Ua^T Ub.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import CENTRED_PAIR, Metric, MetricUndefined, State, centre, svd_basis


def canonical_correlations(basis_a: np.ndarray, basis_b: np.ndarray) -> np.ndarray:
    """Canonical correlations (descending) between the spans of two orthonormal bases."""
    return np.linalg.svd(basis_a.T @ basis_b, compute_uv=False)


def check_dimensions(name: str, n: int, k_a: int, k_b: int) -> None:
    """Raise `MetricUndefined` when k_a + k_b > n - 1: two subspaces of the (n - 1)-dimensional
    centred sample space then share k_a + k_b - (n - 1) directions, canonical correlations of 1
    whatever the data, so the estimate says nothing about the representations."""
    forced = k_a + k_b - (n - 1)
    if forced > 0:
        raise MetricUndefined(
            f"{name}: {k_a} + {k_b} dimensions in {n} samples (n - 1 = {n - 1} after centring) "
            f"force {forced} of {min(k_a, k_b)} canonical correlations to 1 whatever the data; "
            f"use more than {k_a + k_b} samples or keep fewer dimensions")


def _full_rank_basis(name: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(basis, centred X) for plain CCA, which needs independent features and n > d."""
    Xc = centre(X)
    n, d = Xc.shape
    if d >= n - 1:
        raise MetricUndefined(f"{name} needs more samples than features + 1 (n={n}, d={d}): "
                              "every canonical correlation would be 1; use svcca")
    U, _, _ = svd_basis(Xc, centred=True)
    if U.shape[1] < d:
        raise MetricUndefined(f"{name}: the {d} features have rank {U.shape[1]} (constant or "
                              "linearly dependent features); use svcca")
    return U, Xc


class CCA(Metric):
    """Mean canonical correlation over all min(d_a, d_b) canonical pairs.

    Invariant to any invertible linear map and translation of either side. Needs full rank
    features and d_a + d_b < n: with more dimensions, d_a + d_b - (n - 1) canonical correlations
    are 1 whatever the data (NaN with that reason); biased towards 1 as d_a + d_b approaches n.
    """

    name = "cca"
    kind = "similarity"
    symmetric = True
    invariances = ("orthogonal", "isotropic-scaling", "translation", "invertible-linear")
    reference = "Hotelling 1936; mean CCA as in Raghu et al. 2017 (SVCCA, NeurIPS)"
    convention = ("mean of the min(d_a, d_b) canonical correlations, the singular values of "
                  "Ua^T Ub with U orthonormal bases of the centred column spaces")
    description = "mean canonical correlation"
    min_samples = 3
    few_samples = CENTRED_PAIR

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        basis, _ = _full_rank_basis(self.name, X)
        return State(n=len(X), basis=basis)

    def _score(self, a: State, b: State, **_: Any) -> float:
        check_dimensions(self.name, a.n, a.basis.shape[1], b.basis.shape[1])
        return float(canonical_correlations(a.basis, b.basis).mean())


class SVCCA(CCA):
    """SVCCA: keep the top principal components explaining `variance` (0.99) of each side's
    variance, then the mean canonical correlation of the two subspaces (Raghu et al. 2017).

    The CCA step makes it invariant to rotations (a rotated copy scores 1) and to any invertible
    map within the kept subspace; it is biased towards 1 when k_a + k_b approaches n, and NaN
    with the reason when k_a + k_b >= n (canonical correlations forced to 1).
    """

    name = "svcca"
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    reference = ("Raghu, Gilmer, Yosinski & Sohl-Dickstein 2017, SVCCA: Singular Vector Canonical "
                 "Correlation Analysis (NeurIPS)")
    convention = ("per side the fewest top principal components (SVD of the centred data) "
                  "explaining >= `variance` (0.99) of the variance, then the mean of all "
                  "min(k_a, k_b) canonical correlations of the kept subspaces")
    description = "top principal components (99% variance) per side, then mean CCA"
    defaults = {"variance": 0.99}

    def _prepare(self, X: np.ndarray, variance: float, **_: Any) -> State:
        if not 0 < variance <= 1:
            raise ZooError(f"svcca: variance must be in (0, 1], got {variance}")
        U, s, _ = svd_basis(centre(X), centred=True)
        if not len(s):
            raise MetricUndefined("svcca: the representation has no variance (every feature "
                                  "constant)")
        explained = np.cumsum(s**2) / np.sum(s**2)
        keep = min(int(np.searchsorted(explained, variance)) + 1, len(s))
        return State(n=len(X), basis=U[:, :keep])


class PWCCA(Metric):
    """Projection-weighted CCA (Morcos et al. 2018): canonical correlations weighted by how much
    of the representation each canonical direction accounts for.

    The weights come from the side with fewer features (A on a tie, so not symmetric):
    alpha_i ~ sum_j |<h_i, x_j>| with h_i the orthonormal canonical variates and x_j the centred
    features, the paper's formula. The widely used reference code (google/svcca pwcca.py) forms
    its directions without the whitening step (u^T x instead of u^T Sigma_xx^-1/2 x) before
    orthonormalising them, and adds the neuron means back, so its values differ (by up to 0.06
    in a peer check). The sum of absolute projections over features is not rotation
    invariant: an orthogonal transform of the weighting side moves the value. Needs n > d + 1
    and full rank features, like CCA.
    """

    name = "pwcca"
    kind = "similarity"
    symmetric = False
    invariances = ("isotropic-scaling", "translation")
    reference = ("Morcos, Raghu & Bengio 2018, Insights on representational similarity in neural "
                 "networks with canonical correlation (NeurIPS)")
    convention = ("sum_i alpha_i rho_i / sum_i alpha_i, alpha_i = sum_j |<h_i, x_j>|: h_i the "
                  "orthonormal canonical variates, x_j the centred features of the side with "
                  "fewer features (paper's formula; google/svcca's pwcca.py skips the whitening "
                  "of its directions and differs)")
    description = "projection-weighted mean canonical correlation"
    min_samples = 3
    few_samples = CENTRED_PAIR

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        basis, Xc = _full_rank_basis(self.name, X)
        return State(n=len(X), basis=basis, centred=Xc)

    def _score(self, a: State, b: State, **_: Any) -> float:
        check_dimensions(self.name, a.n, a.basis.shape[1], b.basis.shape[1])
        P, rho, Qt = np.linalg.svd(a.basis.T @ b.basis, full_matrices=False)
        if a.basis.shape[1] <= b.basis.shape[1]:
            variates, X = a.basis @ P, a.centred
        else:
            variates, X = b.basis @ Qt.T, b.centred
        weights = np.abs(variates.T @ X).sum(axis=1)
        return float(weights @ rho / weights.sum())
