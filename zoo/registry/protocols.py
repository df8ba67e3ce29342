"""The metric protocol, part of the plugin boundary: the kinds a metric declares, the state a
metric prepares per representation, and `MetricUndefined`, how a metric says it has no value.

A metric is any object with `name` (kebab-case), `kind` (one of KINDS), `prepare(X) -> State`
and `score(a, b) -> float`; optionally `symmetric`, `score_block(states_a, states_b, *,
device, chunk_size, progress)` and `has_block()`. `zoo.metrics.Metric` is the built-ins' base.
"""

from __future__ import annotations

from types import SimpleNamespace

from zoo.errors import ZooError

KINDS = ("similarity", "distance")


class MetricUndefined(ZooError):
    """The metric has no meaningful value for these inputs; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class State(SimpleNamespace):
    """A prepared representation: `n` rows plus the metric's own arrays (attributes)."""

    n: int
