"""The all-pairs engine: prepare every representation once, then score every pair.

Works with any metric object (name, prepare, score; optionally symmetric, score_block,
has_block). Pairs whose metric is undefined come back as NaN with the reason alongside; the
metric signals that by raising an exception with a `reason` attribute (zoo.metrics'
`MetricUndefined`). A representation that is constant to working precision is undefined for
every metric: the prepare step decides that once, before any metric sees it. The engine never
imports a metric module by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zoo.errors import DataError, ZooError
from zoo.progress import Progress

CONSTANT_ULPS = 16  # a column varying by less than this many rounding units is constant


def check_rows(reps_a: Sequence[np.ndarray], reps_b: Sequence[np.ndarray] | None = None) -> int:
    """The common number of rows of all (n, d) representations; a mismatch is a `DataError`."""
    reps = list(reps_a) + list(reps_b or [])
    if not len(reps_a) or (reps_b is not None and not len(reps_b)):
        raise ZooError("nothing to compare: a list of representations is empty")
    for r in reps:
        if np.ndim(r) != 2:
            raise ZooError(f"a representation must be a (samples, features) matrix, got shape "
                           f"{np.shape(r)}; reduce spatial/token axes first (e.g. --reduce gap)")
    sizes = {len(r) for r in reps}
    if len(sizes) > 1:
        raise DataError(f"representations have different numbers of rows {sorted(sizes)}; pair "
                        "rows by sample id before comparing")
    return sizes.pop()


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """(fn(...), "") or (None, reason) when it raises an undefined-metric error.

    An undefined-metric error is a ZooError with a `reason` attribute (`MetricUndefined`);
    any other error propagates.
    """
    try:
        return fn(*args, **kwargs), ""
    except ZooError as exc:
        if not hasattr(exc, "reason"):
            raise
        return None, exc.reason


def constant_reason(rep: Any) -> str:
    """Why `rep` is undefined for every metric ("" if it is not): all its rows are equal to
    working precision, i.e. no column varies by more than CONSTANT_ULPS rounding units of its
    own largest magnitude in the array's dtype (a constant layer computed in batches differs
    by rounding residue only, which metrics would otherwise score as if it were signal)."""
    X = np.asarray(rep)
    if X.ndim != 2 or len(X) < 2 or not np.issubdtype(X.dtype, np.number):
        return ""  # shape errors and "too few samples" are reported by check_rows / the metric
    eps = float(np.finfo(X.dtype).eps) if np.issubdtype(X.dtype, np.floating) else 0.0
    if _varies(X[0], X[-1], eps):
        return ""
    hi, lo = X.max(axis=0).astype(np.float64), X.min(axis=0).astype(np.float64)
    spread = hi - lo  # NaN where a column holds NaN: not constant, the metric reports it
    if not (spread <= CONSTANT_ULPS * eps * np.maximum(np.abs(hi), np.abs(lo))).all():
        return ""
    exact = "exactly" if not spread.any() else (f"to within {CONSTANT_ULPS} units of "
                                                 f"{X.dtype} rounding")
    return (f"the representation is constant: all {len(X)} samples have the same features "
            f"({exact}), so no similarity with it is defined")


def _varies(a: np.ndarray, b: np.ndarray, eps: float) -> bool:
    """Whether two rows alone prove some column is not constant (an O(d) early exit from the
    full column scan): in a constant column every value lies within CONSTANT_ULPS eps M of the
    others (M its largest magnitude, >= max(|a|, |b|) / (1 + CONSTANT_ULPS eps)), so rows
    differing by more than that bound in any column prove it varies."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    bound = CONSTANT_ULPS * eps * np.maximum(np.abs(a), np.abs(b)) / (1 - CONSTANT_ULPS * eps)
    return bool((np.abs(a - b) > bound).any())


def prepare_one(metric: Any, rep: np.ndarray, owned: bool = False) -> tuple[Any, str]:
    """One representation's prepared state, or (None, reason): a constant representation is
    undefined for every metric, decided here before the metric sees it. `owned`: the caller
    hands `rep` over (once: not the same array twice), so a metric whose prepare takes
    `overwrite` may reuse its memory."""
    why = constant_reason(rep)
    if why:
        return None, why
    if owned and "overwrite" in inspect.signature(metric.prepare).parameters:
        return attempt(metric.prepare, rep, overwrite=True)
    return attempt(metric.prepare, rep)


def prepare_all(metric: Any, reps: Sequence[np.ndarray], progress: Progress | None = None,
                owned: bool = False) -> tuple[list[Any], list[str]]:
    """Each representation's prepared state (None where undefined) and reason ("" if fine);
    `owned` as in `prepare_one`."""
    states: list[Any] = []
    reasons: list[str] = []
    for k, rep in enumerate(reps):
        state, why = prepare_one(metric, rep, owned)
        states.append(state)
        reasons.append(why)
        if progress:
            progress("prepare", k + 1, len(reps))
    return states, reasons


def score_all(metric: Any, states_a: Sequence[Any], reasons_a: Sequence[str],
              states_b: Sequence[Any] | None = None, reasons_b: Sequence[str] | None = None, *,
              device: str = "cpu", chunk_size: int | None = None,
              progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Score prepared states (see `all_pairs`); `states_b=None` means A against itself."""
    same = states_b is None
    states_b, reasons_b = (states_a, reasons_a) if same else (states_b, reasons_b)
    values = np.full((len(states_a), len(states_b)), np.nan)
    reasons = np.full(values.shape, "", dtype=object)
    for i, why in enumerate(reasons_a):
        reasons[i, :] = why
    for j, why in enumerate(reasons_b):
        reasons[:, j] = np.where(reasons[:, j] == "", why, reasons[:, j])
    ok_a = [i for i, s in enumerate(states_a) if s is not None]
    ok_b = [j for j, s in enumerate(states_b) if s is not None]
    if not ok_a or not ok_b:
        return values, reasons
    if _use_block(metric, len(ok_a) * len(ok_b)):
        options = _accepted(metric.score_block, dict(device=device, chunk_size=chunk_size,
                                                     progress=progress))
        block = metric.score_block([states_a[i] for i in ok_a],
                                   None if same else [states_b[j] for j in ok_b], **options)
        values[np.ix_(ok_a, ok_b)] = block
        _explain_nan(values, reasons)
        return values, reasons
    mirror = same and getattr(metric, "symmetric", False)
    pairs = [(i, j) for i in ok_a for j in ok_b if not (mirror and j < i)]
    for k, (i, j) in enumerate(pairs):
        value, reasons[i, j] = attempt(metric.score, states_a[i], states_b[j])
        values[i, j] = np.nan if value is None else value
        if mirror:
            values[j, i], reasons[j, i] = values[i, j], reasons[i, j]
        if progress:
            progress("score", k + 1, len(pairs))
    _explain_nan(values, reasons)
    return values, reasons


def all_pairs(metric: Any, reps_a: Sequence[np.ndarray],
              reps_b: Sequence[np.ndarray] | None = None, device: str = "cpu",
              chunk_size: int | None = None, progress: Progress | None = None,
              owned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(values, reasons): values[i, j] = metric(A_i, B_j); NaN where undefined, with the reason.

    Each representation (an (n, d) array, rows paired across all of them) is prepared once.
    Metrics with `score_block` score all pairs as batched linear algebra on `device`, in chunks
    of `chunk_size` (rows of a Gram matrix, entries of an RDM; default: fit ~256 MB); others,
    and a single pair, are scored pair by pair on the CPU. With `reps_b=None`, A is compared
    with itself and symmetric metrics score each pair once. For asymmetric metrics values[i, j]
    is the direction A_i -> B_j; call again with the sides swapped for B -> A. `reasons` is an
    object array of str ("" = defined). A metric's options are bound to it
    (`zoo.metrics.get(name, **options)`), never passed through here. The arrays are never
    modified unless `owned`: then the caller hands them over and a metric may prepare them in
    place (linear CKA centres float32 layers in place instead of copying them).
    """
    check_rows(reps_a, reps_b)
    states_a, why_a = prepare_all(metric, reps_a, progress, owned)
    if reps_b is None:
        return score_all(metric, states_a, why_a, device=device, chunk_size=chunk_size,
                         progress=progress)
    states_b, why_b = prepare_all(metric, reps_b, progress, owned)
    return score_all(metric, states_a, why_a, states_b, why_b, device=device,
                     chunk_size=chunk_size, progress=progress)


def _use_block(metric: Any, pairs: int) -> bool:
    """Batch when the metric can (under its options) and there is more than one pair."""
    return (pairs > 1 and hasattr(metric, "score_block")
            and getattr(metric, "has_block", lambda: True)())


def _accepted(fn: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options `fn` accepts: a minimal `score_block(states_a, states_b, device="cpu")`
    gets only `device`."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {k: v for k, v in options.items() if k in parameters}


def _explain_nan(values: np.ndarray, reasons: np.ndarray) -> None:
    """A NaN that came without a reason is marked so, never left silent."""
    silent = np.isnan(values) & (reasons == "")
    reasons[silent] = "the metric returned NaN without a reason"
