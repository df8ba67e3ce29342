"""The built-in metrics, registered like any plugin's (the host loads this module by name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.metrics.cca import CCA, PWCCA, SVCCA
from zoo.metrics.cka import DebiasedCKA, LinearCKA, RbfCKA
from zoo.metrics.linreg import LinearPredictivity
from zoo.metrics.neighbours import InformationImbalance, MutualKNN
from zoo.metrics.rsa import RSA
from zoo.metrics.shape import Procrustes, ProcrustesAngular, Shape
from zoo.registry.hookspecs import hookimpl

BUILTIN_METRICS = (LinearCKA, DebiasedCKA, RbfCKA, CCA, SVCCA, PWCCA, Procrustes,
                   ProcrustesAngular, Shape, RSA, LinearPredictivity, MutualKNN,
                   InformationImbalance)


@hookimpl
def register_metrics(register: Callable[[Any], None]) -> None:
    for cls in BUILTIN_METRICS:
        register(cls())
