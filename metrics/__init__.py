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
    """A metric with its options checked once and bound: a full metric (name, kind, prepare,
    score, score_block) usable wherever a metric name is, and callable on two paired (n, d)
    representations. Other attributes (reference, invariances, ...) are the metric's."""

    def __init__(self, metric: Any, params: dict[str, Any]) -> None:
        checked = getattr(metric, "params", None)
        self.metric = metric
        self.bound = checked(params) if callable(checked) else dict(params)
        self.name = metric.name
        if hasattr(metric, "score_block"):
            self.score_block = self._score_block

    def __getattr__(self, name: str) -> Any:
        if name in ("metric", "bound"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.metric, name)

    def prepare(self, X: np.ndarray) -> Any:
        """The metric's state of one representation under the bound options."""
        return self.metric.prepare(X, **self.bound)

    def score(self, a: Any, b: Any) -> float:
        """The metric between two prepared representations under the bound options."""
        return self.metric.score(a, b, **self.bound)

    def has_block(self) -> bool:
        """Whether the metric scores blocks of pairs at once under the bound options."""
        has = getattr(self.metric, "has_block", None)
        return has(**self.bound) if has else hasattr(self.metric, "score_block")

    def _score_block(self, states_a: Any, states_b: Any = None, **engine: Any) -> np.ndarray:
        return self.metric.score_block(states_a, states_b, **engine, **self.bound)

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> float:
        return compute(self, X, Y)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.bound.items())})"


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
    m = get(name, **params)
    return m.score(m.prepare(X), m.prepare(Y))


def matrix(name: str | Any, A: Sequence[np.ndarray], B: Sequence[np.ndarray] | None = None, *,
           device: str = "cpu", **params: Any) -> np.ndarray:
    """values[i, j] = metric(A[i], B[j]) (B=None: A against itself), batched where possible.

    Undefined pairs are NaN and a `RuntimeWarning` gives their reasons; use
    `zoo.engine.allpairs.all_pairs` to get the reasons as an array.
    """
    from zoo.engine.allpairs import all_pairs

    values, reasons = all_pairs(get(name, **params), A, B, device=device)
    undefined = sorted({str(r) for r in reasons[np.isnan(values)]})
    if undefined:
        warnings.warn(f"{int(np.isnan(values).sum())} undefined pair(s) left as NaN: "
                      + "; ".join(undefined), RuntimeWarning, stacklevel=2)
    return values
