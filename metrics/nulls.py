"""One permutation null for every pair and for the aggregates a comparison reports.

Each draw shuffles the rows of every B representation with ONE permutation, shared by all
pairs, and scores every (A layer, B layer) pair; the draws are kept as a (draws, A, B) array.
Any statistic computed the same way from the observed matrix and from each draw then has an
exact permutation p-value (1 + #draws at least as extreme) / (1 + draws): that is how the best
match of a layer (max over the other model's layers), the role-block means and the model-level
max get a null that accounts for the selection, where a per-pair p-value at the selected pair
is too small (the max of many nulls is larger than one). p-values over several rows or blocks
are Benjamini-Hochberg-adjusted (zoo.engine.results.adjust_pvalues).

Calibrated score (Groger et al. 2026, calibrated similarity): how far a pair's value lies
beyond the null's critical value (its 1 - ALPHA quantile, ALPHA quantile for a distance),
rescaled so that the metric's best possible value stays 1: (s - c) / (best - c), 0 where s does
not beat c. It removes the positive offset unrelated data gets at this n and width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.engine.allpairs import check_rows, prepare_all, score_all
from zoo.errors import ZooError
from zoo.progress import Progress

ALPHA = 0.05
METHODS = ("permutation null: one shared permutation of B's rows per draw for all pairs "
           "(p = (1 + #extreme) / (1 + draws)); calibrated score = (s - c) / (best - c) beyond "
           f"the null's {1 - ALPHA:.0%} critical value c (Groger et al. 2026, calibrated "
           "similarity); best match per layer, role means and model max tested against the "
           "same draws' max / mean (max-statistic null, Westfall & Young 1993); "
           "Benjamini-Hochberg over layers / blocks")


@dataclass
class NullDraws:
    """Observed values (A, B) and the permutation draws (draws, A, B) of one metric."""

    observed: np.ndarray
    null: np.ndarray
    kind: str  # "similarity" (larger is more alike) or "distance"

    @property
    def draws(self) -> int:
        return len(self.null)

    def oriented(self, values: np.ndarray) -> np.ndarray:
        """Values with larger = more alike (distances negated), so every test is one-sided up."""
        return values if self.kind == "similarity" else -values


def permutation_draws(metric: Any, reps_a: Sequence[np.ndarray],
                      reps_b: Sequence[np.ndarray] | None = None, *, permutations: int = 1000,
                      seed: int = 0, device: str = "cpu", chunk_size: int | None = None,
                      progress: Progress | None = None, **params: Any) -> NullDraws:
    """Score every pair on the data and on `permutations` draws that each shuffle B's rows (A's
    own when reps_b is None) by one permutation shared by all pairs; NaN where undefined."""
    from zoo.metrics import get

    if permutations < 1:
        raise ZooError(f"permutations must be >= 1, got {permutations}")
    m = get(metric, **params)
    n = check_rows(reps_a, reps_b)
    targets = list(reps_a if reps_b is None else reps_b)
    kw = dict(device=device, chunk_size=chunk_size)
    states_a, why_a = prepare_all(m, reps_a)
    if reps_b is None:
        observed, _ = score_all(m, states_a, why_a, **kw)
    else:
        observed, _ = score_all(m, states_a, why_a, *prepare_all(m, targets), **kw)
    rng = np.random.default_rng(seed)
    null = np.empty((permutations,) + observed.shape)
    for k in range(permutations):
        perm = rng.permutation(n)
        shuffled = prepare_all(m, [t[perm] for t in targets])
        null[k], _ = score_all(m, states_a, why_a, *shuffled, **kw)
        if progress:
            progress("permutation", k + 1, permutations)
    return NullDraws(observed, null, m.kind)


def exceedance_pvalues(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #(null >= observed)) / (1 + draws) elementwise over the leading draw axis, for
    oriented values (larger = more alike); NaN where the observed or any draw is NaN."""
    p = (1.0 + (null >= observed).sum(axis=0)) / (1.0 + len(null))
    p = np.asarray(p, dtype=float)
    p[np.isnan(observed) | np.isnan(null).any(axis=0)] = np.nan
    return p


def pair_pvalues(d: NullDraws) -> np.ndarray:
    """The per-pair permutation p-value of every (A, B) cell."""
    return exceedance_pvalues(d.oriented(d.observed), d.oriented(d.null))


def best_value(metric: Any) -> float:
    """The metric's best possible value: its declared `value_range` end, else 1 for a
    similarity (every built-in similarity is at most 1) and 0 for a distance."""
    declared = getattr(metric, "value_range", None)
    if declared is not None:
        return float(declared[1] if metric.kind == "similarity" else declared[0])
    return 1.0 if metric.kind == "similarity" else 0.0


def calibrated_scores(d: NullDraws, metric: Any, alpha: float = ALPHA
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(critical values, calibrated scores) per pair: c is the null's 1 - alpha quantile (alpha
    for a distance); the score is (s - c) / (best - c) where s beats c, else 0; NaN where
    undefined or where c already equals the best value (the null reaches it)."""
    crit = np.quantile(d.oriented(d.null), 1 - alpha, axis=0, method="higher")
    crit[np.isnan(d.null).any(axis=0)] = np.nan
    best = d.oriented(np.asarray(best_value(metric)))
    with np.errstate(invalid="ignore", divide="ignore"):
        room = best - crit
        score = np.where(room > 0, np.maximum(d.oriented(d.observed) - crit, 0.0) / room, np.nan)
    score[np.isnan(d.observed)] = np.nan
    return d.oriented(crit), score


def _nan_best(values: np.ndarray, axis: Any) -> np.ndarray:
    """Max over `axis` of oriented values, NaN only where every entry is NaN."""
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values).any(axis=axis)
        out = np.max(np.where(np.isnan(values), -np.inf, values), axis=axis)
    return np.where(finite, out, np.nan)


def best_match_pvalues(d: NullDraws) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(argbest column, p, BH-adjusted p) per row of A: its best value over B's layers
    against the same draws' best over B's layers (undefined cells skipped, as the observed)."""
    from zoo.engine.results import adjust_pvalues

    obs, null = d.oriented(d.observed), d.oriented(d.null)
    defined = np.isfinite(obs)
    best_obs = _nan_best(obs, axis=1)
    best_null = _nan_best(np.where(defined, null, np.nan), axis=2)  # (draws, A)
    p = exceedance_pvalues(best_obs, best_null)
    column = np.array([int(np.nanargmax(row)) if np.isfinite(row).any() else -1 for row in obs])
    return column, p, adjust_pvalues(p)


def block_mean_pvalues(d: NullDraws, roles_a: Sequence[str], roles_b: Sequence[str]
                       ) -> list[dict[str, Any]]:
    """Per (role of A, role of B) block: the mean over its defined pairs and its p-value
    against the same draws' block means, BH-adjusted over the blocks."""
    from zoo.engine.results import adjust_pvalues

    obs, null = d.oriented(d.observed), d.oriented(d.null)
    out, ps = [], []
    for ra in dict.fromkeys(roles_a):
        for rb in dict.fromkeys(roles_b):
            cells = np.ix_([x == ra for x in roles_a], [x == rb for x in roles_b])
            block = obs[cells]
            keep = np.isfinite(block)
            if not keep.any():
                p = np.nan
            else:
                drawn = null[(slice(None),) + cells][:, keep].mean(axis=1)
                p = float(exceedance_pvalues(np.asarray(block[keep].mean()), drawn))
            out.append({"role_a": ra, "role_b": rb})
            ps.append(p)
    for row, p, adj in zip(out, ps, adjust_pvalues(np.array(ps))):
        row["p_mean"], row["p_mean_adjusted"] = _cell(p), _cell(adj)
    return out


def max_pvalue(d: NullDraws) -> dict[str, Any]:
    """The model-level best pair (max over all pairs) against the draws' max over all pairs."""
    obs, null = d.oriented(d.observed), d.oriented(d.null)
    if not np.isfinite(obs).any():
        return {"value": None, "p": None, "layer_a": None, "layer_b": None}
    i, j = np.unravel_index(np.nanargmax(obs), obs.shape)
    drawn = _nan_best(np.where(np.isfinite(obs), null, np.nan).reshape(d.draws, -1), axis=1)
    p = float(exceedance_pvalues(np.asarray(obs[i, j]), drawn))
    return {"value": float(d.observed[i, j]), "p": p, "layer_a": int(i), "layer_b": int(j)}


def _cell(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def null_statistics(d: NullDraws, metric: Any, roles_a: Sequence[str],
                    roles_b: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-pair arrays (p_value, p_adjusted, critical, calibrated, and p_best / p_best_adjusted
    on each row's best cell, NaN elsewhere) and the aggregates ({"roles": [...], "max": {...}})
    of one metric's draws."""
    from zoo.engine.results import adjust_pvalues

    p = pair_pvalues(d)
    critical, calibrated = calibrated_scores(d, metric)
    column, p_best, p_best_adj = best_match_pvalues(d)
    on_best = np.full(d.observed.shape, np.nan)
    on_best_adj = on_best.copy()
    for i, j in enumerate(column):
        if j >= 0:
            on_best[i, j], on_best_adj[i, j] = p_best[i], p_best_adj[i]
    stats = {"p_value": p, "p_adjusted": adjust_pvalues(p), "critical": critical,
             "calibrated": calibrated, "p_best": on_best, "p_best_adjusted": on_best_adj}
    return stats, {"roles": block_mean_pvalues(d, roles_a, roles_b), "max": max_pvalue(d),
                   "draws": d.draws}


def aggregate_notes(aggregates: dict[str, Any], names_a: Sequence[str],
                    names_b: Sequence[str]) -> list[str]:
    """The aggregate nulls as sentences for figures and reports."""
    top = aggregates.get("max")
    if not top or top["value"] is None:
        return []
    return [f"Model-level best pair {names_a[top['layer_a']]} x {names_b[top['layer_b']]} "
            f"({top['value']:.3f}): p = {top['p']:.3g} against the maximum over all pairs of "
            f"{aggregates['draws']} shared permutations; best-match and role-mean p-values use "
            "the same draws."]
