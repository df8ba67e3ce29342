"""Degenerate estimates are NaN with a reason, never a number fixed by the dimensions alone."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.engine.allpairs import all_pairs
from zoo.metrics.base import MetricUndefined
from zoo.metrics.builtin import BUILTIN_METRICS
from zoo.metrics.cca import CCA, PWCCA, SVCCA, canonical_correlations
from zoo.metrics.neighbours import InformationImbalance, MutualKNN
from zoo.metrics.shape import Shape


def score(metric, X, Y, **params):
    return metric.score(metric.prepare(X, **params), metric.prepare(Y, **params), **params)


@pytest.mark.parametrize("cls", BUILTIN_METRICS, ids=lambda c: c.name)
def test_two_samples_are_nan_with_a_reason(cls):
    """At n = 2 the centred samples are x and -x: every built-in metric is undefined (before,
    cka, cka-rbf, svcca and procrustes gave 1, procrustes-angular and shape 0, imbalance 1)."""
    rng = np.random.default_rng(0)
    reps = [rng.normal(size=(2, 5)), rng.normal(size=(2, 7)), rng.normal(size=(2, 1))]
    values, reasons = all_pairs(cls(), reps)
    assert np.isnan(values).all()
    assert all("samples" in r for r in reasons.ravel()), reasons


def test_svcca_of_unrelated_wide_data_is_nan_not_one():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(16, 2048)), rng.normal(size=(16, 2048))
    with pytest.raises(MetricUndefined, match=r"15 \+ 15 dimensions in 16 samples .* force 15 "
                                              r"of 15 canonical correlations to 1"):
        score(SVCCA(), X, Y)


@pytest.mark.parametrize("metric,params", [(CCA(), {}), (PWCCA(), {}), (Shape(), {"alpha": 0.0})],
                         ids=["cca", "pwcca", "shape-alpha0"])
def test_canonical_correlations_forced_to_one_are_nan(metric, params):
    """d_a + d_b = n - 1 leaves the canonical correlations to the data; one more dimension
    forces one of them to 1 for unrelated data, and the metric says so instead."""
    rng = np.random.default_rng(2)
    X, Y, Z = (rng.normal(size=(20, d)) for d in (9, 10, 10))
    assert np.isfinite(score(metric, X, Y, **params))  # 9 + 10 = n - 1: defined

    def basis(M):
        return np.linalg.qr(M - M.mean(axis=0))[0]

    assert canonical_correlations(basis(Z), basis(Y))[0] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(MetricUndefined, match="force 1 of 10 canonical correlations to 1"):
        score(metric, Z, Y, **params)  # 10 + 10 = n: one correlation is 1 whatever the data


@pytest.mark.parametrize("metric,k", [(MutualKNN(), 10), (InformationImbalance(), 1),
                                      (InformationImbalance(), 3)], ids=["knn", "imb1", "imb3"])
def test_neighbourhoods_of_every_other_sample_are_nan(metric, k):
    """With k = n - 1 every other sample is a neighbour, so the value is fixed; k = n - 2 is
    the smallest n with a data-dependent value."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(k + 2, 4)), rng.normal(size=(k + 2, 4))
    assert np.isfinite(score(metric, X, Y, k=k))
    with pytest.raises(MetricUndefined, match=f"needs at least {k + 2} samples"):
        metric.prepare(X[: k + 1], k=k)
