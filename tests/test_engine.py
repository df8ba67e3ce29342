"""The all-pairs engine: equal to per-pair scoring for every metric, batched or not."""

import numpy as np
import pytest

from zoo.engine.allpairs import CONSTANT_ULPS, all_pairs, check_rows
from zoo.engine.results import tidy_rows
from zoo.errors import DataError, ZooError
from zoo.metrics import get
from zoo.metrics.base import MetricUndefined
from zoo.metrics.builtin import BUILTIN_METRICS
from zoo.metrics.cka import DebiasedCKA, LinearCKA, RbfCKA
from zoo.metrics.rsa import RSA


@pytest.fixture(scope="module")
def reps():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 4))
    return [base, np.tanh(base @ rng.normal(size=(4, 7))), rng.normal(size=(30, 3)),
            base @ rng.normal(size=(4, 5)) + 0.3 * rng.normal(size=(30, 5))]


def per_pair(metric, A, B, **params):
    states_a = [metric.prepare(x, **params) for x in A]
    states_b = [metric.prepare(y, **params) for y in B]
    return np.array([[metric.score(a, b, **params) for b in states_b] for a in states_a])


@pytest.mark.parametrize("cls", BUILTIN_METRICS, ids=lambda c: c.name)
def test_matrix_equals_per_pair_scores(cls, reps):
    m = cls()
    # Angular metrics take arccos, which magnifies rounding near 0 (identical pairs).
    tol = 1e-6 if m.kind == "distance" and m.name != "imbalance" else 1e-10
    values, reasons = all_pairs(m, reps)
    np.testing.assert_allclose(values, per_pair(m, reps, reps), atol=tol)
    assert (reasons == "").all()
    values_ab, _ = all_pairs(m, reps[:2], reps[1:])
    np.testing.assert_allclose(values_ab, per_pair(m, reps[:2], reps[1:]), atol=tol)


@pytest.mark.parametrize("metric,params", [(LinearCKA(), {}), (RSA(), {"rdm": "euclidean"}),
                                           (RSA(), {"compare": "pearson"})],
                         ids=["cka", "rsa-euclidean", "rsa-pearson"])
@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_block_scoring_is_chunk_independent(metric, params, chunk_size, reps):
    assert metric.has_block(**params)
    expected = per_pair(metric, reps, reps[1:], **params)
    values, _ = all_pairs(get(metric, **params), reps, reps[1:], chunk_size=chunk_size)
    np.testing.assert_allclose(values, expected, atol=1e-12)


@pytest.mark.parametrize("cls", [LinearCKA, DebiasedCKA, RbfCKA], ids=lambda c: c.name)
def test_equal_width_layers_batched_in_any_order(cls):
    # Equal widths are grouped into one batched product; results must keep the input order.
    rng = np.random.default_rng(2)
    A = [rng.normal(size=(25, d)) for d in (5, 3, 5, 8, 3)]
    B = [A[3] @ rng.normal(size=(8, 3)), rng.normal(size=(25, 5)), A[0] ** 2]
    m = cls()
    for chunk_size in (4, None):
        np.testing.assert_allclose(all_pairs(m, A, chunk_size=chunk_size)[0],
                                   per_pair(m, A, A), atol=1e-12)
        np.testing.assert_allclose(all_pairs(m, A, B, chunk_size=chunk_size)[0],
                                   per_pair(m, A, B), atol=1e-12)


def test_kendall_rsa_falls_back_to_pairs(reps):
    assert not RSA().has_block(compare="kendall")
    values, _ = all_pairs(get(RSA(), compare="kendall"), reps)
    np.testing.assert_allclose(values, per_pair(RSA(), reps, reps, compare="kendall"))


class CountingMetric:
    """A third-party style metric: only name, symmetric, prepare and score."""

    name, kind, symmetric = "count", "similarity", True

    def __init__(self):
        self.calls = []

    def prepare(self, X):
        if X.shape[1] == 1:
            raise MetricUndefined("one feature only")
        return X

    def score(self, a, b):
        self.calls.append((a.shape[1], b.shape[1]))
        return np.nan if a.shape[1] == b.shape[1] == 3 else float(a.shape[1] * b.shape[1])


def test_symmetric_pairs_are_scored_once_and_undefined_cells_explained():
    rng = np.random.default_rng(1)
    A = [rng.normal(size=(10, d)) for d in (2, 1, 3, 4)]
    m = CountingMetric()
    values, reasons = all_pairs(m, A)
    assert len(m.calls) == 6  # the 3 defined layers: 3 diagonal + 3 off-diagonal pairs
    assert values[0, 3] == values[3, 0] == 8.0
    assert np.isnan(values[1]).all() and np.isnan(values[:, 1]).all()
    assert set(reasons[1]) == {"one feature only"}
    assert reasons[2, 2] == "the metric returned NaN without a reason"
    assert reasons[0, 3] == ""


class MinimalBlockMetric(CountingMetric):
    """The documented minimal block protocol: score_block(states_a, states_b, device)."""

    def score_block(self, states_a, states_b, device="cpu"):
        states_b = states_a if states_b is None else states_b
        return np.array([[self.score(a, b) for b in states_b] for a in states_a]) + 0.5


def test_minimal_third_party_block_metric_is_used(reps):
    values, _ = all_pairs(MinimalBlockMetric(), reps[:2], reps[2:], chunk_size=3)
    np.testing.assert_allclose(values, [[4 * 3 + 0.5, 4 * 5 + 0.5], [7 * 3 + 0.5, 7 * 5 + 0.5]])


def test_progress_is_reported(reps):
    seen = []
    all_pairs(CountingMetric(), reps, progress=lambda task, done, total: seen.append(
        (task, done, total)))
    assert seen[:4] == [("prepare", k, 4) for k in range(1, 5)]
    assert seen[-1] == ("score", 10, 10)
    seen.clear()
    all_pairs(LinearCKA(), reps, chunk_size=10, progress=lambda *a: seen.append(a))
    assert ("gram", 3, 3) in seen


def test_a_constant_representation_is_undefined_for_every_metric(reps):
    """Decided once, before any metric runs: exactly constant rows, and rows that differ only
    by rounding residue (what a constant layer computed in batches gives), are NaN with the
    reason for every registered metric, including those (mutual-knn, rsa) that would otherwise
    score the residue; a small but real signal on a large offset is still scored."""
    from zoo import metrics
    from zoo.registry.host import get_registry

    rng = np.random.default_rng(3)
    exact = np.tile(rng.normal(size=(1, 6)), (30, 1)).astype(np.float32)
    residue = exact.copy()
    residue[::3, ::2] = np.nextafter(exact[::3, ::2], np.inf)  # one unit in the last place
    offset = (100 + 1e-3 * rng.normal(size=(30, 6))).astype(np.float32)  # spread 20x the cut
    for name, metric in get_registry().metrics.items():
        values, reasons = all_pairs(metric, [reps[0], exact, residue, offset])
        for k in (1, 2):
            assert np.isnan(values[k]).all() and np.isnan(values[:, k]).all(), name
            assert all(r.startswith("the representation is constant") for r in reasons[k]), name
        assert "exactly" in reasons[1, 0] and f"{CONSTANT_ULPS} units" in reasons[2, 0]
        assert not np.isnan(values[3, 3]), (name, reasons[3, 3])
        with pytest.raises(MetricUndefined, match="constant"):
            metrics.compute(name, reps[0], exact)
    seen = []

    class Recording(CountingMetric):
        def prepare(self, X):
            seen.append(X.shape)
            return super().prepare(X)

    all_pairs(Recording(), [reps[0], exact[:, :5]])
    assert seen == [reps[0].shape]  # the metric never saw the constant representation


def test_rows_must_pair(reps):
    with pytest.raises(DataError, match="different numbers of rows"):
        all_pairs(LinearCKA(), reps, [reps[0][:20]])
    with pytest.raises(ZooError, match="samples, features"):
        check_rows([np.zeros((4, 2, 2))])
    with pytest.raises(ZooError, match="empty"):
        check_rows([])


def test_unknown_device_is_a_clear_error(reps):
    with pytest.raises(ZooError, match="device"):
        all_pairs(LinearCKA(), reps, device="tpu")


def test_tidy_rows():
    values = np.array([[1.0, np.nan]])
    reasons = np.array([["", "no variance"]], dtype=object)
    a = [{"model": "toy/cnn", "layer": "stem", "role": "stem", "depth": 0.0}]
    b = [{"model": "toy/vit", "layer": "block0", "role": "encoder", "depth": 0.25},
         {"model": "toy/vit", "layer": "embed", "role": "embedding", "depth": 1.0}]
    rows = tidy_rows("cka", values, reasons, a, b, n=16, reduction="gap",
                     stats={"p_value": np.array([[0.01, np.nan]])})
    assert rows[0] == {"model_a": "toy/cnn", "layer_a": "stem", "role_a": "stem", "depth_a": 0.0,
                       "model_b": "toy/vit", "layer_b": "block0", "role_b": "encoder",
                       "depth_b": 0.25, "metric": "cka", "value": 1.0, "reason": "", "n": 16,
                       "reduction": "gap", "p_value": 0.01}
    assert rows[1]["value"] is None and rows[1]["reason"] == "no variance"
    assert rows[1]["p_value"] is None and "ci_low" not in rows[1]
    with pytest.raises(ValueError, match="labels"):
        tidy_rows("cka", values, reasons, a, a, n=16, reduction="gap")
