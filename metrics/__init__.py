"""Similarity metrics between representations (rows = samples, columns = features).

Notebook API: `compute(name, X, Y)` for one pair, `get(name, **options)(X, Y)` with options
bound once, `matrix(name, A, B)` for all pairs of two lists of representations whose rows are
paired by sample id. Metrics are looked up in the
plugin registry, so third-party metrics work the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.metrics.base import Metric, MetricUndefined, State

__all__ = ["BoundMetric", "Metric", "MetricUndefined", "State", "get", "compute", "matrix"]


def get(metric: str | Any, **params: Any) -> Any:
    """The registered metric called `metric` (a metric object is returned as is); with
    `params`, a `BoundMetric` whose options are checked once and bound:
    `get("shape", alpha=0.5)(X, Y)`."""
    if isinstance(metric, str):
        from zoo.registry.host import get_registry

        metric = get_registry().metric(metric)
    return BoundMetric(metric, params) if params else metric


class BoundMetric:
    """A metric with its options bound: call it on two paired (n, d) representations."""

    def __init__(self, metric: Any, params: dict[str, Any]) -> None:
        checked = getattr(metric, "params", None)
        self.metric = metric
        self.params = checked(params) if checked else dict(params)
        self.name = metric.name

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> float:
        return compute(self.metric, X, Y, **self.params)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


def compute(name: str | Any, X: np.ndarray, Y: np.ndarray, **params: Any) -> float:
    """The metric between two (n, d) representations with paired rows.

    Raises `MetricUndefined` (a ZooError, with the reason) where the metric has no value,
    including for a constant representation (the engine's `constant_reason`).
    """
    from zoo.engine.allpairs import check_rows, constant_reason

    check_rows([X], [Y])
    why = constant_reason(X) or constant_reason(Y)
    if why:
        raise MetricUndefined(why)
    m = get(name)
    return m.score(m.prepare(X, **params), m.prepare(Y, **params), **params)


def matrix(name: str, A: Sequence[np.ndarray], B: Sequence[np.ndarray] | None = None, *,
           device: str = "cpu", **params: Any) -> np.ndarray:
    """values[i, j] = metric(A[i], B[j]) (B=None: A against itself), batched where possible.

    Undefined pairs are NaN and a `RuntimeWarning` gives their reasons; use
    `zoo.engine.allpairs.all_pairs` to get the reasons as an array.
    """
    from zoo.engine.allpairs import all_pairs

    values, reasons = all_pairs(get(name), A, B, device=device, **params)
    undefined = sorted({str(r) for r in reasons[np.isnan(values)]})
    if undefined:
        warnings.warn(f"{int(np.isnan(values).sum())} undefined pair(s) left as NaN: "
                      + "; ".join(undefined), RuntimeWarning, stacklevel=2)
    return values
