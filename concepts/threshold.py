"""Exact per-unit top-quantile thresholds in bounded memory (streaming radix select).

The values of every unit are read four times, a few images at a time; each pass histograms one
byte of the values' order-preserving 32-bit keys, so memory is (units x 256) counters whatever
the dataset size, and the result is the exact order statistic of the float32 values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.progress import Progress

Batches = Callable[[], Iterable[tuple[np.ndarray, np.ndarray | None]]]
_SIGN = np.uint32(0x80000000)


def float_keys(values: np.ndarray) -> np.ndarray:
    """float32 values -> uint32 keys with the same order (-0.0 taken as +0.0)."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0)).view(np.uint32)
    return bits ^ ((bits.view(np.int32) >> 31).view(np.uint32) | _SIGN)  # negative: flip all


def keys_to_floats(keys: np.ndarray) -> np.ndarray:
    """Inverse of `float_keys`."""
    keys = np.asarray(keys, dtype=np.uint32)
    return np.where(keys & _SIGN, keys ^ _SIGN, ~keys).astype(np.uint32).view(np.float32)


def check_quantile(quantile: float) -> None:
    """A top quantile must lie strictly between 0 and 1."""
    if not 0.0 < quantile < 1.0:
        raise ZooError(f"quantile {quantile} must lie strictly between 0 and 1 (default 0.005)")


def top_quantile_thresholds(batches: Batches, units: int, quantile: float,
                            progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """Per-unit threshold T such that `value > T` keeps each unit's top `quantile` of values.

    `batches()` yields (values (m, units), weights (m,) or None) and is called once per pass;
    a weight repeats a row (bootstrap multiplicities). With n weighted values per unit and
    k = ceil(quantile * n), T is the (k+1)-th largest value, so exactly k values exceed it when
    there are no ties (-inf when k >= n). Returns (thresholds float32 (units,), n).
    """
    check_quantile(quantile)
    prefix = np.zeros(units, np.uint32)
    rank = np.zeros(units, np.int64)
    n = 0
    base = np.arange(units, dtype=np.int64) * 256
    for step, shift in enumerate((24, 16, 8, 0)):
        counts = np.zeros(units * 256, np.int64)
        for values, weights in batches():
            if np.isnan(values).any():
                raise ZooError("activations contain NaN; check the model's weights and inputs")
            keys = float_keys(values)
            if step:  # only values whose higher bytes match the unit's prefix so far
                rows, cols = np.nonzero((keys >> np.uint32(shift + 8)) == prefix)
                keys, slot = keys[rows, cols], base[cols]
                weights = None if weights is None else weights[rows]
            else:
                slot = np.broadcast_to(base, keys.shape)
                weights = None if weights is None else np.repeat(weights, units)
            slot = slot + ((keys >> np.uint32(shift)) & np.uint32(0xFF))
            counts += np.bincount(slot.ravel(), weights, minlength=units * 256).astype(np.int64)
        counts = counts.reshape(units, 256)
        if step == 0:
            n = int(counts[0].sum()) if units else 0
            k = math.ceil(quantile * n)
            if n == 0 or k >= n:
                return np.full(units, -np.inf, np.float32), n
            rank[:] = n - k - 1
        cum = counts.cumsum(axis=1)
        digit = (cum <= rank[:, None]).sum(axis=1)
        rank -= np.where(digit > 0, cum[np.arange(units), np.maximum(digit - 1, 0)], 0)
        prefix = (prefix << np.uint32(8)) | digit.astype(np.uint32)
        if progress:
            progress("thresholds", step + 1, 4)
    return keys_to_floats(prefix), n
