"""Linear CKA's float32 prepare path (n >= FLOAT32_MIN_SAMPLES): one float32 factor per layer,
centred with float64 means, finiteness from column sums; results against float64 references."""

import numpy as np
import pytest

from zoo.engine.allpairs import all_pairs, constant_reason, prepare_all
from zoo.metrics.cka import LinearCKA, centre_float32
from zoo.metrics.gram import FLOAT32_MIN_SAMPLES

N = FLOAT32_MIN_SAMPLES


def _layers(rng: np.random.Generator, widths=(16, 40, 64)) -> list[np.ndarray]:
    latent = rng.normal(size=(N, 8))
    out = []
    for k, w in enumerate(widths):
        x = np.tanh(latent @ rng.normal(size=(8, w))) + 0.3 * rng.normal(size=(N, w))
        out.append((x + (1e3 * (1 + rng.random(w)) if k % 2 else 0)).astype(np.float32))
    return out


def _cka64(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = (a.astype(np.float64) - a.astype(np.float64).mean(0) for a in (x, y))
    return float(np.sum((xc.T @ yc) ** 2) / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def test_factor_is_one_float32_array_centred_with_float64_means():
    rng = np.random.default_rng(0)
    x = _layers(rng)[1]  # offset ~1e3: a float32 mean would leave ~1e-4 in every column
    state = LinearCKA().prepare(x)
    z = state.gram.factor
    assert z.dtype == np.float32 and state.gram.centred and not np.shares_memory(z, x)
    exact = x.astype(np.float64) - x.astype(np.float64).mean(0)
    # one float32 rounding of the exactly centred value (a unit of the larger of the two)
    spacing = np.spacing(np.maximum(np.abs(exact), np.abs(z)).astype(np.float32))
    assert (np.abs(z - exact) <= spacing).all()
    assert state.trace == pytest.approx(float((exact**2).sum()), rel=1e-6)


def test_all_pairs_matches_float64_reference_within_float32_tolerance():
    layers = _layers(np.random.default_rng(1))
    values, reasons = all_pairs(LinearCKA(), layers)
    assert (reasons == "").all()
    for i in range(len(layers)):
        for j in range(len(layers)):
            # float32 Gram rows: relative error a few float32 units, far below 1e-6
            assert abs(values[i, j] - _cka64(layers[i], layers[j])) < 1e-6
    # the pair-by-pair route scores float32 factors in float64
    pair = LinearCKA().score(*(LinearCKA().prepare(x) for x in layers[:2]))
    assert abs(pair - _cka64(layers[0], layers[1])) < 1e-6


def test_non_finite_and_constant_columns():
    x = _layers(np.random.default_rng(2))[0]
    bad = x.copy()
    bad[7, 3] = np.nan
    states, why = prepare_all(LinearCKA(), [bad, np.where(np.isinf(bad), 0, x)])
    assert states[0] is None and "NaN or infinite" in why[0] and states[1] is not None
    inf = x.copy()
    inf[0, 0] = np.inf
    assert "NaN or infinite" in prepare_all(LinearCKA(), [inf])[1][0]
    const = x.copy()
    const[:, 5] = np.float32(1234.567)  # an exactly constant column centres to exact zeros
    z, _ = centre_float32(const)
    assert not z[:, 5].any()


def test_constant_representation_still_detected_with_the_row_shortcut():
    rng = np.random.default_rng(3)
    base = (1e3 + rng.random(20)).astype(np.float32)
    # rows equal to within a few float32 units: constant to working precision
    x = np.repeat(base[None], N, axis=0)
    x[1:] = np.nextafter(x[1:], np.float32(np.inf))
    assert "constant" in constant_reason(x)
    states, why = prepare_all(LinearCKA(), [x])
    assert states[0] is None and "constant" in why[0]
    # the first and last rows equal, a middle row differs: the full scan still runs
    y = np.repeat(base[None], N, axis=0)
    y[N // 2, 4] += 1
    assert constant_reason(y) == ""


def test_callers_arrays_are_not_modified_unless_handed_over():
    rng = np.random.default_rng(4)
    layers = _layers(rng)
    kept = [x.copy() for x in layers]
    frozen = [x.copy() for x in layers]
    for x in frozen:
        x.flags.writeable = False  # read-only inputs (e.g. a read-only memory map) work
    expected, _ = all_pairs(LinearCKA(), layers)
    for inputs in (layers, frozen):
        assert all(np.array_equal(x, k) for x, k in zip(inputs, kept))
    assert np.array_equal(all_pairs(LinearCKA(), frozen)[0], expected)
    assert np.array_equal(all_pairs(LinearCKA(), frozen, owned=True)[0], expected)
    assert all(np.array_equal(x, k) for x, k in zip(frozen, kept))
    # handed over: centred in place, the factor is the array itself, same values
    states, _ = prepare_all(LinearCKA(), layers, owned=True)
    for x, k, s in zip(layers, kept, states):
        assert s.gram.factor is x and not np.array_equal(x, k)
    assert np.array_equal(all_pairs(LinearCKA(), kept, owned=True)[0], expected)


def test_float32_centring_within_float32_precision_of_float64():
    rng = np.random.default_rng(5)
    for x in _layers(rng, widths=(7, 33)):
        exact = x.astype(np.float64) - x.astype(np.float64).mean(0)
        for overwrite in (False, True):
            z, trace = centre_float32(x.copy(), overwrite)
            # the head/rest subtraction: at most one float32 rounding of the exact difference
            # plus one of the rest (< a unit of the mean's float32 rounding, far smaller)
            bound = np.spacing(np.abs(exact).astype(np.float32)) + np.spacing(
                np.abs(x).astype(np.float32)).max(0) * np.finfo(np.float32).eps
            assert (np.abs(z - exact) <= bound).all()
            # row sums of <= d float32 terms: relative error <= d eps32, totals in float64
            assert abs(trace - (exact**2).sum()) <= x.shape[1] * np.finfo(np.float32).eps * (
                exact**2).sum()
