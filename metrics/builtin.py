"""The built-in metrics, registered like any plugin's (the host loads this module by name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.metrics.aligned_cosine import AlignedCosine
from zoo.metrics.cca import CCA, PWCCA, SVCCA
from zoo.metrics.cka import DebiasedCKA, LinearCKA, RbfCKA
from zoo.metrics.distcorr import DistanceCorrelation
from zoo.metrics.knn import JaccardKNN, RankSimilarity, SecondOrderCosine
from zoo.metrics.linreg import LinearPredictivity
from zoo.metrics.neighbours import InformationImbalance, MutualKNN
from zoo.metrics.outputs import Disagreement, JensenShannon
from zoo.metrics.rsa import RSA
from zoo.metrics.shape import Procrustes, ProcrustesAngular, Shape
from zoo.registry.hookspecs import hookimpl

# Representation metrics: any two (samples, features) matrices.
BUILTIN_METRICS = (LinearCKA, DebiasedCKA, RbfCKA, CCA, SVCCA, PWCCA, Procrustes,
                   ProcrustesAngular, Shape, RSA, LinearPredictivity, MutualKNN,
                   InformationImbalance, JaccardKNN, SecondOrderCosine, RankSimilarity,
                   DistanceCorrelation, AlignedCosine)
# Output-level measures: two classifiers' class scores over the same classes (zoo.metrics.outputs).
OUTPUT_METRICS = (Disagreement, JensenShannon)


@hookimpl
def register_metrics(register: Callable[[Any], None]) -> None:
    for cls in BUILTIN_METRICS + OUTPUT_METRICS:
        register(cls())
