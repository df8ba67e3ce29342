"""Representational similarity analysis: compare the samples' dissimilarity matrices (RDMs).

Each representation becomes the upper triangle of its RDM (n(n-1)/2 values), ranked for
Spearman and standardised to unit length, so a whole block of pairs is one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import Metric, MetricUndefined, State, centre
from zoo.metrics.cka import squared_distances
from zoo.metrics.gram import torch_device

RDMS = ("correlation", "euclidean", "squared-euclidean")
COMPARISONS = ("spearman", "pearson", "kendall")
BLOCK_BYTES = 256 * 2**20


def rdm_vector(X: np.ndarray, rdm: str) -> np.ndarray:
    """Upper triangle (i < j, row-major) of the RDM: 1 - Pearson r between rows, Euclidean or
    squared Euclidean distances.

    Ties are exact: the RDM is computed once per distinct row and made exactly symmetric, so
    duplicate samples are at exactly 0 and exactly as far as each other from every other sample
    (a matrix product rounds entries differently by their position and BLAS thread count,
    which broke ties at random).
    """
    distinct, inverse = np.unique(X, axis=0, return_inverse=True)
    if rdm == "correlation":
        constant = np.flatnonzero(np.ptp(X, axis=1) == 0)
        if len(constant):
            raise MetricUndefined(f"rsa: sample {constant[0]} has the same value in every feature, "
                                  "so its correlation distance is undefined; use rdm='euclidean'")
        Xr = distinct - distinct.mean(axis=1, keepdims=True)
        Xr /= np.linalg.norm(Xr, axis=1, keepdims=True)
        D = 1.0 - Xr @ Xr.T
    else:
        D = squared_distances(centre(distinct))
        if rdm == "euclidean":
            D = np.sqrt(D)
    D = (D + D.T) / 2.0
    np.fill_diagonal(D, 0.0)
    upper = np.triu_indices(len(X), k=1)
    inverse = inverse.reshape(-1)
    return D[inverse[upper[0]], inverse[upper[1]]]


class RSA(Metric):
    """RSA (Kriegeskorte et al. 2008): correlation between the two RDMs' upper triangles.

    Default RDM: correlation distance (1 - Pearson r between the samples' feature vectors, as
    rsatoolbox's 'correlation'; needs >= 2 features, invariant to per-sample scale and offset
    but NOT to rotations of the feature space). rdm='euclidean': plain Euclidean distances;
    rdm='squared-euclidean': squared ones, which is rsatoolbox's default 'euclidean' RDM up to
    its 1/d factor (no comparison depends on that factor). Both are rotation-, translation- and
    isotropic-scale-invariant; they give identical Spearman and Kendall values and differ under
    Pearson (by up to 0.013 in a peer check). Default comparison: Spearman rank correlation
    (ties averaged); 'pearson' and 'kendall' (tau-b, no block scoring) as options.
    """

    name = "rsa"
    kind = "similarity"
    symmetric = True
    invariances = ("isotropic-scaling", "per-sample-scaling", "per-sample-offset")
    invariances_with = tuple(({"rdm": rdm}, ("orthogonal", "isotropic-scaling", "translation"))
                             for rdm in ("euclidean", "squared-euclidean"))
    convention = ("Spearman correlation of the RDMs' upper triangles; RDM 1 - Pearson r between "
                  "samples (rsatoolbox 'correlation'); rdm='squared-euclidean' is rsatoolbox's "
                  "default 'euclidean' (squared distances; its 1/d factor changes nothing), "
                  "rdm='euclidean' takes plain distances")
    reference = ("Kriegeskorte, Mur & Bandettini 2008, Representational similarity analysis "
                 "(Front. Syst. Neurosci.)")
    description = "RDMs (1 - Pearson r) compared by Spearman rank correlation"
    defaults = {"rdm": "correlation", "compare": "spearman"}
    choices = {"rdm": RDMS, "compare": COMPARISONS}
    min_samples = 3

    def _prepare(self, X: np.ndarray, rdm: str, compare: str, **_: Any) -> State:
        if rdm == "correlation" and X.shape[1] < 2:
            raise MetricUndefined("rsa: the correlation RDM needs at least 2 features; use "
                                  "rdm='euclidean'")
        v = rdm_vector(X, rdm)
        if np.ptp(v) == 0:
            raise MetricUndefined("rsa: every pairwise dissimilarity is equal, so the RDM carries "
                                  "no ranking")
        if compare == "kendall":
            return State(n=len(X), rdm=v)
        if compare == "spearman":
            from scipy.stats import rankdata

            v = rankdata(v)
        v = v - v.mean()
        return State(n=len(X), rdm=v / np.linalg.norm(v))

    def _score(self, a: State, b: State, compare: str, **_: Any) -> float:
        if compare == "kendall":
            from scipy.stats import kendalltau

            return float(kendalltau(a.rdm, b.rdm).statistic)
        return float(a.rdm @ b.rdm)

    def has_block(self, **params: Any) -> bool:
        return self.params(params)["compare"] != "kendall"

    def score_block(self, states_a: Sequence[State], states_b: Sequence[State] | None = None, *,
                    device: str = "cpu", chunk_size: int | None = None,
                    progress: Callable[[str, int, int], None] | None = None,
                    **params: Any) -> np.ndarray:
        """All pairs as one product of the standardised (ranked) RDM vectors, chunked."""
        import torch

        if self.params(params)["compare"] == "kendall":
            raise ZooError("rsa: Kendall's tau has no block form; score the pairs one by one")
        dev = torch_device(device)
        b_states = states_a if states_b is None else states_b
        length = len(states_a[0].rdm)
        chunk = chunk_size or max(1, BLOCK_BYTES // (8 * (len(states_a) + len(b_states))))
        out = torch.zeros(len(states_a), len(b_states), dtype=torch.float64, device=dev)
        starts = range(0, length, chunk)
        for step, c0 in enumerate(starts):
            va = _stack(states_a, c0, c0 + chunk, dev)
            vb = va if states_b is None else _stack(b_states, c0, c0 + chunk, dev)
            out += va @ vb.T
            if progress:
                progress("rdm", step + 1, len(starts))
        return out.cpu().numpy()


def _stack(states: Sequence[State], c0: int, c1: int, dev: Any) -> Any:
    import torch

    return torch.from_numpy(np.stack([s.rdm[c0:c1] for s in states])).to(dev)
