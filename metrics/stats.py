"""Statistics for any metric: permutation p-values, bootstrap intervals, and the CKA baseline.

All work on whole matrices of pairs through the engine (single pairs are 1 x 1 matrices), so a
permutation costs one batched all-pairs evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.engine import Progress, all_pairs, check_rows, prepare_all, score_all
from zoo.errors import ZooError
from zoo.metrics import get
from zoo.metrics.cka import LinearCKA


def permutation_pvalues(metric: str | Any, reps_a: Sequence[np.ndarray],
                        reps_b: Sequence[np.ndarray] | None = None, *, permutations: int = 1000,
                        seed: int = 0, device: str = "cpu", chunk_size: int | None = None,
                        progress: Progress | None = None, **params: Any) -> np.ndarray:
    """p[i, j]: how often a value at least as extreme arises with B_j's rows shuffled.

    The null shuffles the rows of the B side (of A itself when reps_b is None) with one
    permutation per round, shared by all pairs; "extreme" is >= for a similarity, <= for a
    distance. p = (1 + #extreme) / (1 + permutations), so never 0. NaN where undefined. With
    reps_b=None, p[i, j] shuffles layer j, so p need not be exactly symmetric.
    """
    if permutations < 1:
        raise ZooError(f"permutations must be >= 1, got {permutations}")
    m = get(metric)
    n = check_rows(reps_a, reps_b)
    targets = list(reps_a if reps_b is None else reps_b)
    kw = dict(device=device, chunk_size=chunk_size, **params)
    states_a, why_a = prepare_all(m, reps_a, **params)
    if reps_b is None:
        observed, _ = score_all(m, states_a, why_a, **kw)
    else:
        observed, _ = score_all(m, states_a, why_a, *prepare_all(m, targets, **params), **kw)
    rng = np.random.default_rng(seed)
    extreme = np.zeros(observed.shape)
    undefined = np.isnan(observed)
    for k in range(permutations):
        perm = rng.permutation(n)
        shuffled = prepare_all(m, [t[perm] for t in targets], **params)
        null, _ = score_all(m, states_a, why_a, *shuffled, **kw)
        undefined |= np.isnan(null)
        extreme += null >= observed if m.kind == "similarity" else null <= observed
        if progress:
            progress("permutation", k + 1, permutations)
    p = (1.0 + extreme) / (1.0 + permutations)
    p[undefined] = np.nan
    return p


def bootstrap_intervals(metric: str | Any, reps_a: Sequence[np.ndarray],
                        reps_b: Sequence[np.ndarray] | None = None, *, resamples: int = 1000,
                        level: float = 0.95, seed: int = 0, device: str = "cpu",
                        chunk_size: int | None = None, progress: Progress | None = None,
                        **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (low, high) per pair, resampling rows (samples).

    Rows are drawn with replacement, the same rows for every representation. Duplicated rows
    bias neighbour-based metrics and let linreg's folds share samples: read those intervals
    with care. NaN where any resample is undefined.
    """
    if resamples < 1 or not 0 < level < 1:
        raise ZooError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    m = get(metric)
    n = check_rows(reps_a, reps_b)
    rng = np.random.default_rng(seed)
    values = []
    for k in range(resamples):
        idx = rng.integers(0, n, n)
        b = None if reps_b is None else [r[idx] for r in reps_b]
        values.append(all_pairs(m, [r[idx] for r in reps_a], b, device=device,
                                chunk_size=chunk_size, **params)[0])
        if progress:
            progress("bootstrap", k + 1, resamples)
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(np.stack(values), [tail, 100.0 - tail], axis=0)
    return low, high


def permutation_test(metric: str | Any, X: np.ndarray, Y: np.ndarray, **kw: Any) -> float:
    """The permutation p-value of one pair (see `permutation_pvalues`)."""
    return float(permutation_pvalues(metric, [X], [Y], **kw)[0, 0])


def bootstrap_ci(metric: str | Any, X: np.ndarray, Y: np.ndarray,
                 **kw: Any) -> tuple[float, float]:
    """The bootstrap interval of one pair (see `bootstrap_intervals`)."""
    low, high = bootstrap_intervals(metric, [X], [Y], **kw)
    return float(low[0, 0]), float(high[0, 0])


def expected_cka_matrix(reps_a: Sequence[np.ndarray],
                        reps_b: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Exact mean of biased linear CKA over all row permutations of B, for every pair.

    For double-centred Gram matrices K, L: E_perm <K, P L P^T> = tr(K) tr(L) / (n - 1), so
    E[CKA] = tr(K) tr(L) / ((n - 1) ||K||_F ||L||_F): what unrelated data scores at this n and
    these widths (close to 1 when the widths approach n). NaN for undefined representations.
    """
    n = check_rows(reps_a, reps_b)
    cka = LinearCKA()
    trace, norm = [], []
    for reps in (reps_a, reps_a if reps_b is None else reps_b):
        states = prepare_all(cka, reps)[0]
        trace.append(np.array([np.nan if s is None else s.trace for s in states]))
        # ||K||_F = (n - 1) sqrt(HSIC) with the biased HSIC normalisation of the states.
        norm.append(np.array([np.nan if s is None else (n - 1) * np.sqrt(cka.self_hsic(s))
                              for s in states]))
    return np.outer(trace[0], trace[1]) / ((n - 1) * np.outer(norm[0], norm[1]))


def expected_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """The permutation mean of biased linear CKA for this pair (see `expected_cka_matrix`)."""
    return float(expected_cka_matrix([X], [Y])[0, 0])
