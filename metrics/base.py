"""The metric protocol: attributes every metric states, the prepare/score split, and 'undefined'.

A metric turns one representation (an (n, d) matrix, rows = samples already paired by sample id)
into a cheap prepared `State` once, then scores pairs of states. When a metric cannot give a
meaningful number (one feature where it needs two, a constant representation, too few samples)
it raises `MetricUndefined(reason)`; the engine records NaN together with that reason.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from zoo.errors import DataError, UnknownNameError, ZooError
from zoo.registry.protocols import KINDS, MetricUndefined, State

__all__ = ["KINDS", "Metric", "MetricUndefined", "State", "as_matrix", "centre", "describe",
           "svd_basis"]


class Metric:
    """Base class of the built-in metrics (third-party ones need only name, prepare and score).

    Subclasses set the class attributes (`invariances` under the default parameters and
    `invariances_with` for settings that change them are checked against the metric's values by
    zoo.metrics.invariance.check_invariances) and implement `_prepare(X, **params)` and
    `_score(a, b, **params)`; `X` arrives as a finite float64 (n, d) array. `defaults` lists the
    accepted parameters (anything else is an error) and `choices` the allowed values of the
    string ones. Metrics that can score many pairs at once as batched linear algebra also define
    `score_block(states_a, states_b=None, *, device, chunk_size, progress, **params)`, returning
    the (len(a), len(b)) matrix (`states_b=None`: A against itself).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    symmetric: ClassVar[bool]
    invariances: ClassVar[tuple[str, ...]]  # names from zoo.metrics.invariance.INVARIANCES
    invariances_with: ClassVar[tuple[tuple[dict[str, Any], tuple[str, ...]], ...]] = ()
    reference: ClassVar[str]  # the paper
    convention: ClassVar[str]  # the formula, and where it departs from common implementations
    description: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    min_samples: ClassVar[int] = 2
    few_samples: ClassVar[str] = ""  # why fewer than min_samples give no meaningful value

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        """`given` checked against `defaults`/`choices` and completed with the defaults."""
        for key, value in given.items():
            if key not in self.defaults:
                raise UnknownNameError(f"parameter of metric {self.name!r}", key, self.defaults,
                                       "See `zoo list metrics`")
            if key in self.choices and value not in self.choices[key]:
                raise UnknownNameError(f"value of {self.name} parameter {key!r}", str(value),
                                       self.choices[key])
        return {**self.defaults, **given}

    def prepare(self, X: np.ndarray, **params: Any) -> State:
        """Validate one (n, d) representation and build its per-layer state."""
        p = self.params(params)
        X = as_matrix(X)
        if len(X) < self.min_samples:
            why = f": {self.few_samples}" if self.few_samples else ""
            raise MetricUndefined(f"{self.name} needs at least {self.min_samples} samples, got "
                                  f"{len(X)}{why}")
        if not np.isfinite(X).all():
            raise MetricUndefined("the representation contains NaN or infinite values")
        return self._prepare(X, **p)

    def score(self, a: State, b: State, **params: Any) -> float:
        """The metric between two prepared representations (rows paired)."""
        p = self.params(params)
        if a.n != b.n:
            raise DataError(f"{self.name}: representations have {a.n} and {b.n} rows; rows must "
                            "be paired by sample id before comparing")
        return float(self._score(a, b, **p))

    def has_block(self, **params: Any) -> bool:
        """Whether `score_block` handles these parameters (the engine loops over pairs if not)."""
        return hasattr(self, "score_block")

    def _prepare(self, X: np.ndarray, **params: Any) -> State:
        raise NotImplementedError

    def _score(self, a: State, b: State, **params: Any) -> float:
        raise NotImplementedError


def describe(metric: Any) -> dict[str, Any]:
    """What `zoo list metrics` shows for a registered metric, built-in or third-party (whose
    optional attributes may be missing): kind, invariances as data, paper and convention."""
    return {"name": metric.name, "kind": metric.kind,
            "symmetric": getattr(metric, "symmetric", True),
            "invariances": list(getattr(metric, "invariances", ())),
            "invariances_with": [{"params": dict(p), "invariances": list(names)}
                                 for p, names in getattr(metric, "invariances_with", ())],
            "reference": getattr(metric, "reference", ""),
            "convention": getattr(metric, "convention", ""),
            "description": getattr(metric, "description", ""),
            "defaults": dict(getattr(metric, "defaults", {}))}


def as_matrix(X: Any) -> np.ndarray:
    """`X` as a float64 (samples, features) array; anything else is a clear error."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ZooError(f"a representation must be a (samples, features) matrix, got shape "
                       f"{arr.shape}; reduce spatial/token axes first (e.g. --reduce gap)")
    return arr


CENTRED_PAIR = ("after centring, 2 samples are one direction (x and -x), so every pair would "
                "score the same whatever the data")


def centre(X: np.ndarray) -> np.ndarray:
    """Column-centred float64 copy; exactly constant columns become exactly zero.

    Centring in float64 keeps an offset (e.g. +100 on float32 features) from eating precision,
    and zeroing constant columns keeps rounding residue from posing as signal.
    """
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    if len(X):
        Xc[:, np.ptp(X, axis=0) == 0] = 0.0
    return Xc


def svd_basis(Xc: np.ndarray, centred: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD (U, s, Vt) of `Xc` with numerically zero components dropped.

    The cut-off is numpy's matrix-rank tolerance (s_max * max(n, d) * eps): components below it
    are rounding residue, and whitening would blow them up. `centred` rows (mean removed) span
    at most n - 1 directions: the n-th is rounding residue whatever its size, so it is dropped.
    """
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    tol = (s[0] if len(s) else 0.0) * max(Xc.shape) * np.finfo(np.float64).eps
    keep = s > tol
    if centred:
        keep[len(Xc) - 1:] = False
    return U[:, keep], s[keep], Vt[keep]
