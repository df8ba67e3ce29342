"""Closed-form linear alignments between two layers (CCA, orthogonal Procrustes, ridge), each fit
on training rows and scored on held-out rows.

Rows of X and Y must already be paired (same sample, same position): pair them by sample id with
`zoo.features.layers.pair_by_ids` first. When rows are pixels of images, pass the image id of each
row
as `groups` so that no image lands on both sides of the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from zoo.errors import UnknownNameError, ZooError

METHODS = ("cca", "procrustes", "ridge")
SCORES = {"cca": "mean canonical correlation", "procrustes": "r2", "ridge": "r2"}


@dataclass(frozen=True)
class PairwiseAlignment:
    """A fitted alignment: X and Y map into one space by (X - x_mean) @ x_map and
    (Y - y_mean) @ y_map. For ridge and Procrustes that space is Y's own (y_map = I), so
    `transform_x` predicts centred Y; for CCA it is the k canonical variates."""

    method: str
    x_mean: np.ndarray
    y_mean: np.ndarray
    x_map: np.ndarray
    y_map: np.ndarray
    score: float  # held-out (see `score_name`)
    train_score: float
    n_train: int
    n_test: int

    @property
    def score_name(self) -> str:
        return SCORES[self.method]

    def transform_x(self, X: np.ndarray) -> np.ndarray:
        """X rows in the shared space."""
        return (np.asarray(X, np.float64) - self.x_mean) @ self.x_map

    def transform_y(self, Y: np.ndarray) -> np.ndarray:
        """Y rows in the shared space."""
        return (np.asarray(Y, np.float64) - self.y_mean) @ self.y_map


def split_rows(n: int, test_fraction: float, seed: int = 0,
               groups: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test row indices; with `groups`, whole groups go to one side."""
    if not 0.0 < test_fraction < 1.0:
        raise ZooError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if groups is None:
        keys = np.arange(n)
    else:
        if len(groups) != n:
            raise ZooError(f"{len(groups)} group labels for {n} rows")
        _, keys = np.unique(np.asarray(groups), return_inverse=True)
    units = rng.permutation(keys.max() + 1)
    n_test = int(round(test_fraction * len(units)))
    if not 0 < n_test < len(units):
        raise ZooError(f"cannot hold out {test_fraction:.0%} of {len(units)} "
                       f"{'groups' if groups is not None else 'rows'}; need more samples")
    test = np.isin(keys, units[:n_test])
    return np.flatnonzero(~test), np.flatnonzero(test)


def _inv_sqrt(C: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(C)
    return (vecs / np.sqrt(vals)) @ vecs.T


def _ridge(Xc: np.ndarray, Yc: np.ndarray, alpha: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    gram = Xc.T @ Xc
    lam = alpha * np.trace(gram) / gram.shape[0]
    return np.linalg.solve(gram + lam * np.eye(len(gram)), Xc.T @ Yc), np.eye(Yc.shape[1])


def _procrustes(Xc: np.ndarray, Yc: np.ndarray, alpha: float,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    u, s, vt = np.linalg.svd(Xc.T @ Yc, full_matrices=False)
    scale = s.sum() / (Xc * Xc).sum()
    return scale * (u @ vt), np.eye(Yc.shape[1])


def _cca(Xc: np.ndarray, Yc: np.ndarray, alpha: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(Xc)
    cxx, cyy, cxy = Xc.T @ Xc / n, Yc.T @ Yc / n, Xc.T @ Yc / n
    wx = _inv_sqrt(cxx + alpha * np.trace(cxx) / len(cxx) * np.eye(len(cxx)))
    wy = _inv_sqrt(cyy + alpha * np.trace(cyy) / len(cyy) * np.eye(len(cyy)))
    u, _, vt = np.linalg.svd(wx @ cxy @ wy, full_matrices=False)
    return wx @ u[:, :k], wy @ vt.T[:, :k]


FITS = {"cca": _cca, "procrustes": _procrustes, "ridge": _ridge}


def _r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Variance-weighted R^2 over all outputs, around the target's own mean."""
    total = ((target - target.mean(0)) ** 2).sum()
    return float(1.0 - ((target - pred) ** 2).sum() / total) if total > 0 else float("nan")


def _mean_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Pearson correlation of matching columns of a and b."""
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return float(np.mean((a * b).sum(0) / den)) if np.all(den > 0) else float("nan")


def align_pair(X: np.ndarray, Y: np.ndarray, method: str = "procrustes",
               test_fraction: float = 0.25, groups: Sequence[str] | None = None,
               seed: int = 0, alpha: float = 1e-3,
               n_components: int | None = None) -> PairwiseAlignment:
    """Fit `method` mapping paired rows X (n, dx) onto Y (n, dy); score it on held-out rows.

    `alpha` regularises ridge and CCA relative to the mean variance (scale-free). Scores: R^2 of
    predicting Y (ridge, Procrustes with scale) or the mean correlation of the first
    `n_components` canonical variate pairs (CCA, default min(dx, dy)).
    """
    if method not in FITS:
        raise UnknownNameError("alignment method", method, METHODS)
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ZooError(f"X and Y must be paired 2-D arrays, got {X.shape} and {Y.shape}")
    if method == "procrustes" and X.shape[1] > Y.shape[1]:
        raise ZooError(f"Procrustes maps X onto Y orthogonally and needs dims(X) <= dims(Y), got "
                       f"{X.shape[1]} > {Y.shape[1]}; swap X and Y, reduce X, or use ridge or cca")
    k = n_components or min(X.shape[1], Y.shape[1])
    if not 1 <= k <= min(X.shape[1], Y.shape[1]):
        raise ZooError(f"n_components={k} must be between 1 and min(dims) = "
                       f"{min(X.shape[1], Y.shape[1])}")
    train, test = split_rows(len(X), test_fraction, seed, groups)
    x_mean, y_mean = X[train].mean(0), Y[train].mean(0)
    x_map, y_map = FITS[method](X[train] - x_mean, Y[train] - y_mean, alpha, k)
    fit = PairwiseAlignment(method, x_mean, y_mean, x_map, y_map, float("nan"), float("nan"),
                            len(train), len(test))
    score = _mean_corr if method == "cca" else _r2

    def evaluate(rows: np.ndarray) -> float:
        return score(fit.transform_x(X[rows]), fit.transform_y(Y[rows]))

    return replace(fit, score=evaluate(test), train_score=evaluate(train))
