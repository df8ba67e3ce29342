"""Streaming (minibatch) CKA: what it equals, precision, merging, many layers, undefined cases."""

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.metrics.cka import DebiasedCKA
from zoo.metrics.streaming import StreamingCKA


def song_hsic(X, Y):
    """Song et al. 2012's unbiased HSIC with linear kernels on raw (uncentred) features."""
    n = len(X)
    K, L = X @ X.T, Y @ Y.T
    K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


def related(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, np.tanh(X @ rng.normal(size=(5, 7))) + 0.3 * rng.normal(size=(n, 7))


def stream(X, Y, batch, **kw):
    s = StreamingCKA(**kw)
    for start in range(0, len(X), batch):
        s.update(X[start:start + batch], Y[start:start + batch])
    return s


def test_one_batch_equals_debiased_cka():
    X, Y = related(50)
    m = DebiasedCKA()
    full = m.score(m.prepare(X), m.prepare(Y))
    assert stream(X, Y, 50).value()[0, 0] == pytest.approx(full, rel=1e-10)


def test_minibatches_average_the_per_batch_unbiased_hsic():
    X, Y = related(90)
    X = X + 2.0  # the estimator is translation invariant; the reference centres nothing
    batches = [slice(s, s + 20) for s in range(0, 90, 20)]  # last batch has 10 rows
    xy = sum(song_hsic(X[b], Y[b]) for b in batches)
    xx = sum(song_hsic(X[b], X[b]) for b in batches)
    yy = sum(song_hsic(Y[b], Y[b]) for b in batches)
    assert stream(X, Y, 20).value()[0, 0] == pytest.approx(xy / np.sqrt(xx * yy), rel=1e-10)


def test_minibatch_cka_approaches_debiased_cka():
    X, Y = related(3000, seed=1)
    m = DebiasedCKA()
    full = m.score(m.prepare(X), m.prepare(Y))
    assert stream(X, Y, 300).value()[0, 0] == pytest.approx(full, abs=0.02)


def test_float32_offset_of_100_and_scaling_change_nothing():
    X, Y = related(200, seed=2)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    base = stream(X32, Y32, 50).value()[0, 0]
    shifted = stream(X32 + np.float32(100), np.float32(0.01) * Y32, 50).value()[0, 0]
    assert shifted == pytest.approx(base, abs=1e-4)


def test_merge_equals_one_accumulator():
    X, Y = related(120, seed=3)
    whole = stream(X, Y, 30)
    first, second = stream(X[:60], Y[:60], 30), stream(X[60:], Y[60:], 30)
    first.merge(second)
    assert first.batches == whole.batches == 4
    np.testing.assert_allclose(first.value(), whole.value(), rtol=1e-12)


def test_many_layers_at_once_equal_pairwise_accumulators():
    rng = np.random.default_rng(4)
    a = [rng.normal(size=(64, d)) for d in (3, 6)]
    b = [np.tanh(a[0] @ rng.normal(size=(3, 4))), rng.normal(size=(64, 2)), a[1] ** 2]
    together = StreamingCKA(2, 3)
    for start in range(0, 64, 16):
        rows = slice(start, start + 16)
        together.update([x[rows] for x in a], [y[rows] for y in b])
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            assert together.value()[i, j] == pytest.approx(stream(x, y, 16).value()[0, 0],
                                                           rel=1e-10)
    self_only = StreamingCKA(2, None)
    self_only.update(a)
    assert self_only.value()[0, 0] == pytest.approx(1.0)
    assert self_only.value().shape == (2, 2)


def test_constant_layer_is_nan_with_reason():
    X, _ = related(40)
    s = StreamingCKA(1, 2)
    s.update(X, [X[:, :2], np.full((40, 3), 0.1)])
    assert np.isnan(s.value()[0, 1]) and s.reasons()[0, 1] == (
        "layer of B has no variance in any minibatch")
    assert s.value()[0, 0] > 0 and s.reasons()[0, 0] == ""


def test_invalid_use_is_a_clear_error():
    X, Y = related(10)
    with pytest.raises(ZooError, match="at least 4 samples"):
        StreamingCKA().update(X[:3], Y[:3])
    with pytest.raises(ZooError, match="expected 2 layer"):
        StreamingCKA(2, 1).update(X, Y)
    with pytest.raises(ZooError, match="different numbers of rows"):
        StreamingCKA().update(X, Y[:8])
    with pytest.raises(ZooError, match="no minibatch"):
        StreamingCKA().value()
