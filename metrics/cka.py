"""Centred kernel alignment: linear (biased and debiased HSIC) and RBF kernels.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). Each representation is centred once
(`prepare`) with float64 column means; the centred features are the Gram factor, reduced to n
columns only when they are more than REDUCE_RATIO times wider than n. Where the Gram rows are
formed in float32 anyway (n >= FLOAT32_MIN_SAMPLES), biased linear CKA centres a float32
representation straight into its float32 factor (`centre_float32`: float64 column sums, then one
float32 pass; in place when the caller hands the array over, else into one new array).
Pairs are scored in feature space (cheap when widths are small) or, for whole blocks of pairs,
as one chunked product of stacked Gram rows (`score_block`, torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import CENTRED_PAIR, Metric, MetricUndefined, State, centre
from zoo.metrics.gram import Gram, forms_float32, gram_inner_products

# Features stay the factor up to this many times n columns: a reduction to n columns costs more
# float64 work (n^2 d + ~10 n^3) than the float32 Gram rows it saves ((d - n) n^2), so it only
# pays for the size of the prepared state, which it bounds to REDUCE_RATIO n-column factors.
REDUCE_RATIO = 4
CENTRE_BLOCK_BYTES = 256 * 2**10  # rows centred per step: a block stays in L2 between passes


class _GramCKA(Metric):
    """CKA from prepared Gram matrices; `unbiased` picks the HSIC estimator."""

    kind = "similarity"
    symmetric = True
    unbiased: ClassVar[bool] = False
    min_samples = 3
    few_samples = CENTRED_PAIR

    def score_block(self, states_a: Sequence[State], states_b: Sequence[State] | None = None, *,
                    device: str = "cpu", chunk_size: int | None = None,
                    progress: Callable[[str, int, int], None] | None = None,
                    **params: Any) -> np.ndarray:
        """All pairs at once: one chunked product over the stacked flattened Gram matrices."""
        self.params(params)
        cross, self_a, self_b = gram_inner_products(
            [s.gram for s in states_a], None if states_b is None else [s.gram for s in states_b],
            unbiased=self.unbiased, device=device, chunk_size=chunk_size, progress=progress)
        denom = np.sqrt(np.outer(self_a, self_b))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, cross / denom, np.nan)

    def self_hsic(self, state: State) -> float:
        """HSIC of a representation with itself (computed on first use, kept in the state)."""
        if state.hsic is None:
            state.hsic = self._hsic(state, state)
        return state.hsic

    def _score(self, a: State, b: State, **_: Any) -> float:
        denom = self.self_hsic(a) * self.self_hsic(b)
        if not denom > 0:
            raise MetricUndefined(f"{self.name}: the HSIC estimate of a representation with "
                                  "itself is not positive")
        return self._hsic(a, b) / np.sqrt(denom)

    def _hsic(self, a: State, b: State) -> float:
        raise NotImplementedError


class LinearCKA(_GramCKA):
    """Linear CKA with the biased HSIC estimator (Kornblith et al. 2019).

    HSIC_0(X, Y) = ||Xc^T Yc||_F^2 / (n-1)^2 on column-centred X, Y. Invariant to orthogonal
    transforms, isotropic scaling and translation of either side; NOT to general invertible
    linear maps. Biased upwards for unrelated data when n is small relative to the widths: see
    `cka-debiased` and `zoo.metrics.stats.expected_cka`. Undefined for a constant
    representation.
    """

    name = "cka"
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    reference = ("Kornblith, Norouzi, Lee & Hinton 2019, Similarity of Neural Network "
                 "Representations Revisited (ICML)")
    convention = ("HSIC_0(X, Y) / sqrt(HSIC_0(X, X) HSIC_0(Y, Y)), HSIC_0 = ||Xc^T Yc||_F^2 / "
                  "(n - 1)^2 on column-centred data (biased estimator)")
    description = "linear CKA, biased HSIC estimator"

    def prepare(self, X: np.ndarray, *, overwrite: bool = False, **params: Any) -> State:
        """As `Metric.prepare`; a float32 representation whose Gram rows are formed in float32
        (`forms_float32`) and that needs no reduction is centred into its float32 factor
        without a float64 copy: in place when `overwrite` (the caller hands X over), else
        into one new array."""
        X = np.asarray(X)
        if (self.unbiased or X.dtype != np.float32 or X.ndim != 2 or not forms_float32(len(X))
                or X.shape[1] > REDUCE_RATIO * len(X)):
            return super().prepare(X, **params)
        self.params(params)
        Z, trace = centre_float32(X, overwrite)
        if not trace > 0:
            raise MetricUndefined("the representation has no variance (every feature constant)")
        return State(n=len(Z), gram=Gram(factor=Z, centred=True), trace=trace, hsic=None)

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        Xc = centre(X)
        n, d = Xc.shape
        Z = Xc if d <= REDUCE_RATIO * n else gram_factor(Xc)
        diag = np.einsum("ij,ij->i", Z, Z)
        if not diag.any():
            raise MetricUndefined("the representation has no variance (every feature constant)")
        state = State(n=n, gram=Gram(factor=Z), trace=float(diag.sum()), hsic=None)
        if self.unbiased:
            state.diag = diag
            state.rows = Z @ Z.sum(axis=0) - diag  # row sums of K with the diagonal removed
        return state

    def _hsic(self, a: State, b: State) -> float:
        cross = _float64(a.gram.factor).T @ _float64(b.gram.factor)
        return float(np.sum(cross * cross)) / (a.n - 1) ** 2


class DebiasedCKA(LinearCKA):
    """Linear CKA with Song et al. (2012)'s unbiased HSIC estimator in numerator and denominator.

    HSIC_1 = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)), K~ = K with
    zero diagonal. Near 0 for unrelated data at any n (can be slightly negative; never clipped).
    Same invariances as `cka`; needs n >= 4.
    """

    name = "cka-debiased"
    unbiased = True
    min_samples = 4
    few_samples = "the unbiased HSIC estimator divides by n(n - 3)"
    reference = ("Song, Smola, Gretton, Bedo & Borgwardt 2012 (unbiased HSIC, JMLR); debiased CKA "
                 "as in Nguyen, Raghu & Kornblith 2021")
    convention = ("HSIC_1 = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / "
                  "(n(n-3)), K~ = Xc Xc^T with zero diagonal, in numerator and denominator; "
                  "never clipped at 0")
    description = "linear CKA, unbiased HSIC estimator (near 0 for unrelated data)"

    def _hsic(self, a: State, b: State) -> float:
        n = a.n
        cross = a.gram.factor.T @ b.gram.factor
        trace = float(np.sum(cross * cross)) - float(a.diag @ b.diag)
        ones = a.rows.sum() * b.rows.sum() / ((n - 1) * (n - 2))
        return (trace + ones - 2.0 / (n - 2) * float(a.rows @ b.rows)) / (n * (n - 3))


class RbfCKA(_GramCKA):
    """RBF-kernel CKA (biased HSIC) with a bandwidth per representation, as Kornblith et al. 2019.

    sigma = frac * sqrt(median of the squared Euclidean distances over the full n x n matrix,
    diagonal zeros included); kernel exp(-d^2 / (2 sigma^2)); default frac 0.5. Because sigma
    follows each side's scale, it is invariant to isotropic scaling, orthogonal transforms and
    translation of either side. Undefined when the median squared distance is 0.
    """

    name = "cka-rbf"
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    reference = ("Kornblith, Norouzi, Lee & Hinton 2019, Similarity of Neural Network "
                 "Representations Revisited (ICML)")
    convention = ("biased HSIC of kernels exp(-||x_i - x_j||^2 / (2 sigma^2)), sigma = frac x "
                  "sqrt(median squared distance over the full n x n matrix, zero diagonal "
                  "included), frac 0.5, per side")
    description = "RBF-kernel CKA, bandwidth frac * sqrt(median squared distance) per side"
    defaults = {"frac": 0.5}

    def _prepare(self, X: np.ndarray, frac: float, **_: Any) -> State:
        if not frac > 0:
            raise ZooError(f"cka-rbf: frac must be > 0, got {frac}")
        d2 = squared_distances(centre(X))
        median = float(np.median(d2))
        if median == 0:
            raise MetricUndefined("cka-rbf: the median squared distance is 0 (most samples "
                                  "identical), so the bandwidth is undefined")
        sigma = frac * np.sqrt(median)
        K = np.exp(-d2 / (2.0 * sigma**2))
        K -= K.mean(axis=0, keepdims=True)
        K -= K.mean(axis=1, keepdims=True)
        return State(n=len(K), gram=Gram(matrix=K), sigma=sigma, hsic=None)

    def _hsic(self, a: State, b: State) -> float:
        return float(np.sum(a.gram.matrix * b.gram.matrix)) / (a.n - 1) ** 2


def centre_float32(X: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, float]:
    """(Xc, ||Xc||_F^2): float32 X centred with float64 column means, in place when
    `overwrite` (X writeable), else into one new float32 array; never a float64 copy.

    Two passes over X, its rows split between torch's threads: float64 column sums, then
    the float32 subtraction of the mean as a float32 head and the float32 rest, block by
    block so each block stays in cache between its two subtractions and its squared norm
    (the result matches rounding the exact float64 difference once, to within a unit of
    float32 rounding of Xc). The float64 sums also check finiteness: a NaN or inf in a
    column makes its sum non-finite, and float32 values cannot overflow a float64 sum. An
    exactly constant column becomes exactly 0 (its mean is exact).
    """
    import torch

    src = np.ascontiguousarray(X)
    parts = _row_parts(len(src), torch.get_num_threads())
    with ThreadPoolExecutor(len(parts)) as pool:
        sums = sum(pool.map(lambda p: np.add.reduce(src[p[0]:p[1]], axis=0, dtype=np.float64),
                            parts))
        if not np.isfinite(sums).all():
            raise MetricUndefined("the representation contains NaN or infinite values")
        mean = sums / len(src)
        head = mean.astype(np.float32)
        rest = (mean - head).astype(np.float32)
        in_place = (overwrite or src is not X) and src.flags.writeable
        # torch's allocator: fresh pages of a large array fault in ~3x faster than numpy's here
        out = src if in_place else torch.empty(src.shape, dtype=torch.float32).numpy()
        step = max(1, CENTRE_BLOCK_BYTES // max(1, 4 * src.shape[1]))
        trace = sum(pool.map(lambda p: _centre_rows(src, out, head, rest, *p, step), parts))
    return out, float(trace)


def _row_parts(n: int, parts: int) -> list[tuple[int, int]]:
    """`parts` (at least 1) contiguous row ranges covering n rows."""
    edges = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _centre_rows(src: np.ndarray, out: np.ndarray, head: np.ndarray, rest: np.ndarray,
                 r0: int, r1: int, step: int) -> float:
    """out[r0:r1] = (src[r0:r1] - head) - rest in float32, `step` rows at a time; returns the
    block's squared norm (float32 row sums of <= d terms, their total in float64)."""
    trace = 0.0
    for a in range(r0, r1, step):
        b = min(r1, a + step)
        block = np.subtract(src[a:b], head, out=out[a:b])
        block -= rest
        trace += float(np.einsum("ij,ij->i", block, block).sum(dtype=np.float64))
    return trace


def _float64(factor: np.ndarray) -> np.ndarray:
    return np.asarray(factor, dtype=np.float64)


def gram_factor(Xc: np.ndarray) -> np.ndarray:
    """An (n, n) factor Z with Z Z^T = Xc Xc^T (eigh of the float64 Gram matrix, rounding-level
    negative eigenvalues set to 0): cheaper than a QR of Xc^T once d is a few times n."""
    values, vectors = np.linalg.eigh(Xc @ Xc.T)
    return vectors * np.sqrt(np.maximum(values, 0.0))


def squared_distances(X: np.ndarray) -> np.ndarray:
    """All pairwise squared Euclidean distances between rows (n x n, exact zero diagonal).

    Computed through the Gram matrix for speed; rounding can leave tiny negatives, set to 0.
    """
    sq = np.einsum("ij,ij->i", X, X)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.fill_diagonal(d2, 0.0)
    return np.maximum(d2, 0.0, out=d2)
