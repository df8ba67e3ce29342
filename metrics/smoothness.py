"""Smoothness profiles: how much one model's representation changes from layer to layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from zoo.engine.allpairs import attempt, check_rows, prepare_all
from zoo.errors import ZooError
from zoo.metrics import get
from zoo.progress import Progress


class Profile(NamedTuple):
    """Change between consecutive layers (len = layers - 1) and the reason where it is NaN."""

    values: np.ndarray
    reasons: list[str]


def smoothness(reps: Sequence[np.ndarray], metric: str | Any = "cka",
               progress: Progress | None = None, **params: Any) -> Profile:
    """The change from each layer to the next along depth, for one model's ordered layers.

    change[i] = 1 - s(L_i, L_i+1) for a similarity metric s (e.g. 1 - CKA), or d(L_i, L_i+1)
    for a distance d; for an asymmetric metric the direction is L_i -> L_i+1. A smoothly
    processing network has a low, flat profile; abrupt representational steps show as peaks
    (compare CNNs and transformers, as in the processing-steps study).
    """
    m = get(metric, **params)
    if len(reps) < 2:
        raise ZooError(f"smoothness needs at least 2 layers, got {len(reps)}")
    check_rows(reps)
    states, why = prepare_all(m, reps, progress)
    values = np.full(len(reps) - 1, np.nan)
    reasons = [""] * len(values)
    for i in range(len(values)):
        reasons[i] = why[i] or why[i + 1]
        if reasons[i]:
            continue
        value, reasons[i] = attempt(m.score, states[i], states[i + 1])
        if value is not None:
            values[i] = 1.0 - value if m.kind == "similarity" else value
    return Profile(values, reasons)
