"""Distance correlation (Szekely, Rizzo & Bakirov 2007) between two representations."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.metrics.base import Metric, MetricUndefined, State, centre
from zoo.metrics.cka import squared_distances


def double_centred_distances(X: np.ndarray) -> np.ndarray:
    """The (n, n) Euclidean distance matrix with row, column and grand means removed."""
    D = np.sqrt(squared_distances(centre(X)))
    return D - D.mean(axis=0) - D.mean(axis=1)[:, None] + D.mean()


class DistanceCorrelation(Metric):
    """Distance correlation dCor(X, Y) = sqrt(dCov^2(X, Y) / sqrt(dCov^2(X, X) dCov^2(Y, Y))).

    dCov^2 is the V-statistic mean(A * B) of the double-centred Euclidean distance matrices A, B
    (as `dcor.distance_correlation` and ReSi's repsim). 0 only for independent samples in the
    population, 1 for a rotated, scaled and shifted copy. Invariant to orthogonal transforms,
    isotropic scaling and translation of either side.
    """

    name = "distance-correlation"
    kind = "similarity"
    symmetric = True
    invariances = ("orthogonal", "isotropic-scaling", "translation")
    convention = ("sqrt(V / sqrt(V_XX V_YY)), V = mean(A * B) over the double-centred Euclidean "
                  "distance matrices (biased V-statistic, as dcor.distance_correlation and "
                  "ReSi's repsim)")
    reference = ("Szekely, Rizzo & Bakirov 2007, Measuring and Testing Dependence by Correlation "
                 "of Distances (Annals of Statistics); ranked among the best for vision by ReSi "
                 "(Klabunde et al. 2025, ICLR)")
    description = "distance correlation of the samples' Euclidean distances"
    min_samples = 3
    few_samples = ("with 2 samples both double-centred distance matrices are d [[-1, 1], [1, -1]] "
                   "/ 2, so every pair scores 1")

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        A = double_centred_distances(X)
        return State(n=len(X), centred=A, dvar=float(np.mean(A * A)))

    def _score(self, a: State, b: State, **_: Any) -> float:
        dcov = float(np.mean(a.centred * b.centred))
        # dCov^2 >= 0 (a weighted L2 distance of characteristic functions); only rounding, of
        # order eps times the distance-variance scale, can make the V-statistic negative.
        scale = np.sqrt(a.dvar * b.dvar)
        if dcov < -a.n * np.finfo(np.float64).eps * scale:
            raise MetricUndefined(f"{self.name}: negative distance covariance {dcov:.3g}, "
                                  "beyond rounding")
        return float(np.sqrt(max(dcov, 0.0) / scale))
