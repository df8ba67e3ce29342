"""Similarity metrics between representations (rows = samples, columns = features).

Notebook API: `compute(name, X, Y)` for one pair, `matrix(name, A, B)` for all pairs of two
lists of representations whose rows are paired by sample id. Metrics are looked up in the
plugin registry, so third-party metrics work the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.metrics.base import Metric, MetricUndefined, State

__all__ = ["Metric", "MetricUndefined", "State", "get", "compute", "matrix"]


def get(metric: str | Any) -> Any:
    """The registered metric called `metric` (a metric object is returned as is)."""
    if not isinstance(metric, str):
        return metric
    from zoo.registry import get_registry

    return get_registry().metric(metric)


def compute(name: str, X: np.ndarray, Y: np.ndarray, **params: Any) -> float:
    """The metric between two (n, d) representations with paired rows.

    Raises `MetricUndefined` (a ZooError, with the reason) where the metric has no value.
    """
    from zoo.engine import check_rows

    check_rows([X], [Y])
    m = get(name)
    return m.score(m.prepare(X, **params), m.prepare(Y, **params), **params)


def matrix(name: str, A: Sequence[np.ndarray], B: Sequence[np.ndarray] | None = None, *,
           device: str = "cpu", **params: Any) -> np.ndarray:
    """values[i, j] = metric(A[i], B[j]) (B=None: A against itself), batched where possible.

    Undefined pairs are NaN and a `RuntimeWarning` gives their reasons; use
    `zoo.engine.all_pairs` to get the reasons as an array.
    """
    from zoo.engine import all_pairs

    values, reasons = all_pairs(get(name), A, B, device=device, **params)
    undefined = sorted({str(r) for r in reasons[np.isnan(values)]})
    if undefined:
        warnings.warn(f"{int(np.isnan(values).sum())} undefined pair(s) left as NaN: "
                      + "; ".join(undefined), RuntimeWarning, stacklevel=2)
    return values
