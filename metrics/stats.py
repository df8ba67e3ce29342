"""Statistics for any metric: permutation p-values, confidence intervals, the CKA baseline.

All work on whole matrices of pairs through the engine (single pairs are 1 x 1 matrices), so a
permutation costs one batched all-pairs evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.engine.allpairs import all_pairs, check_rows, prepare_all
from zoo.errors import ZooError
from zoo.metrics import MetricUndefined, get
from zoo.metrics.cka import LinearCKA
from zoo.progress import Progress


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
    from zoo.metrics.nulls import pair_pvalues, permutation_draws

    return pair_pvalues(permutation_draws(metric, reps_a, reps_b, permutations=permutations,
                                          seed=seed, device=device, chunk_size=chunk_size,
                                          progress=progress, **params))


# Metrics whose interval has a coverage test behind it (tests/test_metrics_intervals.py,
# tests/test_numbers_coverage.py, benchmarks/bench_coverage.py): grouped-jackknife 95% intervals
# contained a planted population CKA in >= 93% of draws on isotropic, anisotropic and low-rank
# Gaussian populations.
COVERED = ("cka", "cka-debiased")
JACKKNIFE_GROUPS = 20
# Half-widths are the t_(g-1) quantile times the jackknife standard error times this factor,
# calibrated on the coverage study (benchmarks/bench_coverage.py, 1000 draws per row): without
# it anisotropic and low-rank populations at n = 100 covered 0.92-0.93 (intervals too high:
# the pseudo-values leave part of the ratio's bias where few directions carry the CKA; 10
# groups did not help), with it >= 0.94.
WIDENING = 1.1
# Heavy tails: the jackknife's standard error rests on fourth moments, and on Student-t(3)
# features (infinite fourth moments) the intervals covered 0.88. A representation whose squared
# sample norms spread more than this many times what a Gaussian with its covariance gives
# (tail_ratio; 1 in expectation for Gaussians, <= 1.6 in 99% of the draws of the coverage study,
# median 5.6 for Student-t(3)) gets no interval.
TAIL_RATIO_MAX = 2.0
# Biased CKA's own bias grows with width / n; above this unrelated-data baseline
# (expected_cka_matrix) the jackknife no longer removes enough of it (coverage 0.916 at
# baselines 0.08-0.11, 0.71 at 0.29; 0.94-0.95 at <= 0.043), so those pairs get no interval.
BIASED_BASELINE_MAX = 0.05


def confidence_intervals(metric: str | Any, reps_a: Sequence[np.ndarray],
                         reps_b: Sequence[np.ndarray] | None = None, *, level: float = 0.95,
                         groups: int = JACKKNIFE_GROUPS, seed: int = 0, device: str = "cpu",
                         chunk_size: int | None = None, progress: Progress | None = None,
                         **params: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grouped-jackknife t-intervals (low, high, reasons) for the population value of each pair.

    Samples are split at random (seeded) into `groups` groups and each replicate leaves one
    group out, so no sample is ever duplicated (duplicates biased the percentile bootstrap
    upward: it covered a planted CKA 25-83% of the time). Pseudo-values g v - (g - 1) v_(-j)
    remove the O(1/n) bias of the estimate; the interval is their mean +- WIDENING x t_(g-1) x
    their standard error. Only metrics in COVERED get intervals (others raise `MetricUndefined`
    saying why); pairs that are undefined in any replicate, pairs with a heavy-tailed side
    (`tail_ratio` above TAIL_RATIO_MAX) and biased-cka pairs whose unrelated-data baseline
    exceeds BIASED_BASELINE_MAX are NaN with the reason.
    """
    from scipy.stats import t as student

    if groups < 2 or not 0 < level < 1:
        raise ZooError(f"need groups >= 2 and 0 < level < 1, got {groups} and {level}")
    m = get(metric, **params)
    if m.name not in COVERED:
        raise MetricUndefined(f"no confidence interval for {m.name}: intervals are reported only "
                              f"where a coverage test backs them ({', '.join(COVERED)}); use "
                              "permutation p-values")
    n = check_rows(reps_a, reps_b)
    g = min(groups, n)
    kw = dict(device=device, chunk_size=chunk_size)
    values, reasons = all_pairs(m, reps_a, reps_b, **kw)
    labels = np.random.default_rng(seed).permutation(n) % g
    left_out = []
    for j in range(g):
        keep = labels != j
        b = None if reps_b is None else [r[keep] for r in reps_b]
        left_out.append(all_pairs(m, [r[keep] for r in reps_a], b, **kw)[0])
        if progress:
            progress("jackknife", j + 1, g)
    pseudo = g * values - (g - 1) * np.stack(left_out)
    half = (WIDENING * student.ppf(0.5 + level / 2, g - 1) * pseudo.std(axis=0, ddof=1)
            / np.sqrt(g))
    centre = pseudo.mean(axis=0)
    reasons = reasons.copy()
    gaps = np.isnan(pseudo).any(axis=0) & (reasons == "")
    reasons[gaps] = "undefined on some jackknife replicate (too few samples left out of a group)"
    tails = [np.array([tail_ratio(r) for r in reps])
             for reps in (reps_a, reps_a if reps_b is None else reps_b)]
    for i, j in zip(*np.nonzero((np.maximum.outer(*tails) > TAIL_RATIO_MAX) & (reasons == ""))):
        reasons[i, j] = (f"no interval: heavy-tailed features (the samples' squared norms "
                         f"spread {max(tails[0][i], tails[1][j]):.1f}x what Gaussian features "
                         f"with this covariance give, > {TAIL_RATIO_MAX:g}), where the "
                         "jackknife's standard error is unreliable; use permutation p-values")
    if m.name == "cka":
        baseline = expected_cka_matrix(reps_a, reps_b)
        for i, j in zip(*np.nonzero((baseline > BIASED_BASELINE_MAX) & (reasons == ""))):
            reasons[i, j] = (f"no interval: unrelated data would score {baseline[i, j]:.2f} at "
                             "this n and width, a bias the jackknife does not remove; use "
                             "cka-debiased")
    low, high = centre - half, centre + half
    low[reasons != ""] = high[reasons != ""] = np.nan
    return low, high, reasons


def tail_ratio(X: np.ndarray) -> float:
    """Var ||x_i - mean||^2 / (2 ||S||_F^2), S the sample covariance: 1 in expectation for
    Gaussian rows whatever their covariance, large for heavy tails (infinite fourth moments)."""
    Xc = np.asarray(X, np.float64)
    Xc = Xc - Xc.mean(axis=0)
    n, d = Xc.shape
    gram = Xc @ Xc.T if n <= d else Xc.T @ Xc  # same nonzero spectrum
    spread = 2.0 * np.sum(gram * gram) / (n - 1) ** 2
    return float(np.var(np.einsum("ij,ij->i", Xc, Xc), ddof=1) / spread) if spread > 0 else 0.0


def permutation_test(metric: str | Any, X: np.ndarray, Y: np.ndarray, **kw: Any) -> float:
    """The permutation p-value of one pair (see `permutation_pvalues`)."""
    return float(permutation_pvalues(metric, [X], [Y], **kw)[0, 0])


def confidence_interval(metric: str | Any, X: np.ndarray, Y: np.ndarray,
                        **kw: Any) -> tuple[float, float]:
    """The confidence interval of one pair (see `confidence_intervals`); NaN where it has none."""
    low, high, _ = confidence_intervals(metric, [X], [Y], **kw)
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
