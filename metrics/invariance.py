"""Declared metric properties as data, and the check that holds every metric to them.

A metric declares `invariances` (names from INVARIANCES, under its default parameters), may
declare `invariances_with` (a tuple of (params, names) for settings that change them, e.g.
shape's alpha or RSA's RDM) and states its `convention` (formula, and how it relates to the
reference implementation) next to `reference` (the paper). `check_invariances` applies each
declared transform to either side of random paired data and reports every declaration the
metric's values do not honour; tests run it over the whole registry, third-party metrics
included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from zoo.errors import ZooError

# name -> (what it means, a random instance applied to X (n, d))
INVARIANCES: dict[str, tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
    "orthogonal": ("X -> X Q, Q orthogonal (rotations and reflections of the feature space)",
                   lambda X, rng: X @ np.linalg.qr(rng.normal(size=(X.shape[1],) * 2))[0]),
    "isotropic-scaling": ("X -> c X, c > 0", lambda X, rng: X * rng.uniform(0.2, 5.0)),
    "translation": ("X -> X + 1 b^T (one offset added to every sample; large, as the mean of "
                    "ReLU features is)",
                    lambda X, rng: X + rng.normal(0.0, 300.0, size=X.shape[1])),
    "invertible-linear": ("X -> X M, M invertible",
                          lambda X, rng: X @ _invertible(X.shape[1], rng)),
    "per-sample-scaling": ("X -> diag(c) X, c_i > 0 (each sample rescaled)",
                           lambda X, rng: X * rng.uniform(0.5, 2.0, size=(len(X), 1))),
    "per-sample-offset": ("X -> X + b 1^T (a constant added to every feature of a sample)",
                          lambda X, rng: X + rng.normal(0.0, 3.0, size=(len(X), 1))),
}
# A declared invariance holds exactly in exact arithmetic, so on the well-conditioned data
# below a true one moves the value by float64 rounding only (at most 6e-16 over the built-ins);
# the smallest false one measured moves it by 1e-3 (pwcca under rotation). sqrt(eps) = 1.5e-8
# sits between the two with orders of magnitude to spare on either side.
TOLERANCE = float(np.sqrt(np.finfo(np.float64).eps))


def _invertible(d: int, rng: np.random.Generator) -> np.ndarray:
    """A random invertible d x d matrix with singular values in [0.5, 2] (condition <= 4)."""
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q1 * rng.uniform(0.5, 2.0, size=d)) @ q2


def declared_invariances(metric: Any) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    """(params, invariance names) for the default parameters and every declared setting."""
    return [({}, tuple(getattr(metric, "invariances", ())))] + [
        (dict(p), tuple(names)) for p, names in getattr(metric, "invariances_with", ())]


# (samples, width of A, width of B): more samples than features, and as many or fewer. After
# centring n rows span n - 1 directions; the n-th is a rounding residue, which an offset makes
# large enough to be counted: shape (0 < alpha < 1) and linreg moved by up to 1e-2 under
# translation when n <= d before the rank was capped at n - 1.
SHAPES = {"n>d": (60, 5, 6), "n=d": (12, 12, 14), "n<d": (10, 16, 20), "n<<d": (12, 40, 48)}


def paired_data(n: int = 60, seed: int = 0, widths: tuple[int, int] = (5, 6)
                ) -> tuple[np.ndarray, np.ndarray]:
    """Two related, well-conditioned representations (n x widths[0] and n x widths[1]) with
    paired rows, so that metric values are away from their bounds (where arccos-type metrics
    magnify rounding)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, widths[0]))
    Y = np.tanh(X @ rng.normal(size=widths)) + 0.5 * rng.normal(size=(n, widths[1]))
    return X, Y


def check_invariances(metric: Any, seed: int = 0, shape: str = "n>d") -> list[str]:
    """Every declared invariance of `metric` that its values do not honour (empty when all hold)
    on paired data of one of SHAPES.

    Each transform is drawn at random and applied to each side in turn; a deviation above
    TOLERANCE, a value undefined on the transformed data, or an unknown invariance name is a
    failure, described in one line. A setting undefined on the untransformed data (a metric
    that needs n > d, say) is held to staying undefined.
    """
    from zoo.metrics import compute

    n, width_a, width_b = SHAPES[shape]
    X, Y = paired_data(n, seed, (width_a, width_b))
    if getattr(metric, "same_width", False):  # output-level measures: the same classes
        Y = Y[:, : X.shape[1]]
    rng = np.random.default_rng(seed + 1)
    failures = []
    for params, names in declared_invariances(metric):
        setting = f" with {params} ({shape})" if params else f" ({shape})"
        try:
            base = compute(metric, X, Y, **params)
        except ZooError:
            base = None
        for name in names:
            if name not in INVARIANCES:
                failures.append(f"{metric.name}{setting}: unknown invariance {name!r} (known: "
                                f"{', '.join(INVARIANCES)})")
                continue
            move = INVARIANCES[name][1]
            for side, (A, B) in (("A", (move(X, rng), Y)), ("B", (X, move(Y, rng)))):
                try:
                    value = compute(metric, A, B, **params)
                except ZooError as exc:
                    if base is None:
                        continue
                    failures.append(f"{metric.name}{setting}: {name} of side {side} made it "
                                    f"fail: {exc}")
                    continue
                if base is None:
                    failures.append(f"{metric.name}{setting}: undefined on the data, but "
                                    f"{name} of side {side} made it {value:.6g}")
                elif not abs(value - base) <= TOLERANCE:
                    failures.append(f"{metric.name}{setting}: declares {name} but {name} of "
                                    f"side {side} moves it from {base:.6g} to {value:.6g}")
    return failures
