"""Cross-validated ridge predictivity: how much of B's variance a linear map from A explains."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import Metric, MetricUndefined, State, svd_basis

# Ridge penalties tried by generalised cross-validation, relative to the mean eigenvalue of the
# training fold's A^T A (so the grid follows A's scale).
RELATIVE_PENALTIES = 10.0 ** np.arange(-6, 4)


def fold_indices(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """`folds` disjoint test-index sets covering 0..n-1 (a seeded shuffle, sorted per fold)."""
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, folds)]


def _gcv_penalty(s: np.ndarray, UtB: np.ndarray, total: float, n: int) -> float:
    """The grid penalty with the smallest GCV error (Golub, Heath & Wahba 1979) on this fold.

    With Bc = U UtB + B_perp, the residual of ridge with penalty lam is
    sum_k (1 - shrink_k)^2 ||UtB_k||^2 + ||B_perp||^2, shrink_k = s_k^2 / (s_k^2 + lam), and the
    fit uses 1 + sum_k shrink_k degrees of freedom (the intercept counts one). 1 - shrink_k is
    formed as lam / (s_k^2 + lam), without cancellation; with n - 1 directions (n <= d) the
    centred rows span everything, so B_perp is exactly 0 rather than a rounding residue.
    """
    power = np.sum(UtB * UtB, axis=1)
    perp = 0.0 if len(s) >= n - 1 else max(total - power.sum(), 0.0)
    best, best_err = 0.0, np.inf
    for lam in RELATIVE_PENALTIES * np.mean(s**2):
        left = lam / (s**2 + lam)  # 1 - shrink
        resid = np.sum(left**2 * power) + perp
        err = resid / ((n - 1 - len(s) + left.sum()) / n) ** 2
        if err < best_err:
            best, best_err = lam, err
    return best


class LinearPredictivity(Metric):
    """Cross-validated ridge R^2 of B predicted from A (asymmetric: score(a, b) is A -> B).

    K-fold (default 5, seeded shuffle): per fold, centre on the training rows, fit ridge with
    the penalty chosen by generalised cross-validation from a grid relative to A's scale (or
    `alpha` times the mean eigenvalue of A^T A), predict the held-out rows. The value is the
    pooled variance-weighted R^2 = 1 - SSE / SST over all folds and B's features (can be < 0).
    Invariant to orthogonal transforms, isotropic scaling and translation of either side. Its
    state keeps each fold's SVD of A (about `folds` times the size of A).
    """

    name = "linreg"
    kind = "similarity"
    symmetric = False
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    reference = ("Yamins et al. 2014 (neural predictivity); cross-validated ridge as in Schrimpf "
                 "et al. 2018, Brain-Score")
    convention = ("1 - SSE / SST pooled over 5 seeded folds and B's features; ridge penalty by "
                  "generalised cross-validation on a grid relative to the mean eigenvalue of the "
                  "training fold's A^T A")
    description = "cross-validated ridge R^2 of B from A (both directions in a matrix)"
    defaults = {"folds": 5, "seed": 0, "alpha": None}

    def _prepare(self, X: np.ndarray, folds: int, seed: int, alpha: float | None,
                 **_: Any) -> State:
        if folds < 2:
            raise ZooError(f"linreg: folds must be >= 2, got {folds}")
        if alpha is not None and not alpha > 0:
            raise ZooError(f"linreg: alpha must be > 0, got {alpha}")
        n = len(X)
        if n < 2 * folds:
            raise MetricUndefined(f"linreg needs at least 2 x folds = {2 * folds} samples, got {n}")
        fits = []
        for test in fold_indices(n, folds, seed):
            train = np.setdiff1d(np.arange(n), test)
            mean = X[train].mean(axis=0)
            U, s, Vt = svd_basis(X[train] - mean, centred=True)
            fits.append(State(n=len(train), train=train, test=test, U=U, s=s,
                              projected=(X[test] - mean) @ Vt.T))
        return State(n=n, X=X, folds=fits)

    def _score(self, a: State, b: State, alpha: float | None, **_: Any) -> float:
        sse = sst = 0.0
        for fit in a.folds:
            train_b = b.X[fit.train]
            mean = train_b.mean(axis=0)
            centred = train_b - mean
            UtB = fit.U.T @ centred
            if len(fit.s):
                lam = (alpha * np.mean(fit.s**2) if alpha is not None else
                       _gcv_penalty(fit.s, UtB, float(np.sum(centred**2)), fit.n))
                pred = fit.projected @ ((fit.s / (fit.s**2 + lam))[:, None] * UtB) + mean
            else:  # A is constant on this fold: the best linear prediction is B's mean
                pred = np.broadcast_to(mean, (len(fit.test), len(mean)))
            sse += float(np.sum((b.X[fit.test] - pred) ** 2))
            sst += float(np.sum((b.X[fit.test] - mean) ** 2))
        if sst == 0:
            raise MetricUndefined("linreg: the predicted representation has no variance on the "
                                  "held-out samples")
        return 1.0 - sse / sst
