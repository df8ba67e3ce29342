"""The one tidy row format every comparison output uses, and the statistics' bookkeeping.

A row is one (model A, layer A) x (model B, layer B) cell of one metric: labels, value, the
reason where it is undefined, and the statistics that were computed. `compare`, `matrix`, their
CSV/JSON files and DataFrames all come from `tidy_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

P_ADJUST = "Benjamini-Hochberg"  # false discovery rate over the layer pairs of one metric


def tidy_rows(metric: str, values: np.ndarray, reasons: np.ndarray,
              labels_a: Sequence[dict[str, Any]], labels_b: Sequence[dict[str, Any]], *,
              n: int, reduction: str, stats: dict[str, np.ndarray] | None = None
              ) -> list[dict[str, Any]]:
    """One dict per (i, j) cell: model_a, layer_a, role_a, depth_a, the same for B, metric,
    value (None where undefined), reason ("" where defined), n, reduction, then each statistic
    in `stats` (p_value, p_adjusted, ci_low, ci_high, baseline) for that cell.

    `labels_*` are {model, layer, role, depth} per row / column of `values`; p_adjusted is
    Benjamini-Hochberg over the layer pairs of the metric.
    """
    if values.shape != (len(labels_a), len(labels_b)):
        raise ValueError(f"values {values.shape} do not match {len(labels_a)} x "
                         f"{len(labels_b)} labels")
    rows = []
    for i, a in enumerate(labels_a):
        for j, b in enumerate(labels_b):
            row = {**{f"{k}_a": v for k, v in a.items()}, **{f"{k}_b": v for k, v in b.items()},
                   "metric": metric, "value": _cell(values[i, j]),
                   "reason": str(reasons[i, j]) if math.isnan(values[i, j]) else "",
                   "n": n, "reduction": reduction}
            row.update({k: _cell(v[i, j]) for k, v in (stats or {}).items()})
            rows.append(row)
    return rows


def _cell(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def adjust_pvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate, scipy's implementation) over
    all finite entries of `p`; NaN stays NaN."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = false_discovery_control(p[finite], method="bh")
    return out


def value_scale(metric: Any, values: np.ndarray) -> tuple[float, float] | None:
    """The fixed colour range of a metric's heatmaps: its declared `value_range`, else [0, 1]
    for a similarity whose values lie there, else None (auto)."""
    declared = getattr(metric, "value_range", None)
    if declared is not None:
        return tuple(declared)
    finite = values[np.isfinite(values)]
    if getattr(metric, "kind", "") == "similarity" and (
            not finite.size or (finite.min() >= -1e-6 and finite.max() <= 1 + 1e-6)):
        return (0.0, 1.0)
    return None


def reason_counts(reasons: np.ndarray, values: np.ndarray) -> dict[str, int]:
    """How many undefined cells each distinct reason explains."""
    counts: dict[str, int] = {}
    for why in reasons[np.isnan(values)]:
        key = str(why) or "undefined (no reason given)"
        counts[key] = counts.get(key, 0) + 1
    return counts
