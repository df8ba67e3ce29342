"""Layer-by-layer comparison of two models (and of many) over one dataset: features paired by
sample id, metric matrices, best matches and role summaries. Statistics (p-values, intervals,
baselines) are attached by the caller from `zoo.metrics.stats` (the core never imports metrics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.engine import all_pairs
from zoo.extract import extract, select_layers
from zoo.features import pair_by_ids

if TYPE_CHECKING:
    from zoo.cache import FeatureCache
    from zoo.data import Dataset
    from zoo.model import ZooModel
    from zoo.specs import LayerInfo

Progress = Callable[[str, int, int], None]


@dataclass
class Side:
    """One model's layers (ordered by depth) and their reduced features, rows paired by id."""

    model: str
    random_init: bool
    layers: list[LayerInfo]
    reps: list[np.ndarray]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.layers]

    @property
    def roles(self) -> list[str]:
        return [i.role for i in self.layers]


@dataclass
class MetricResult:
    """One metric's layer x layer matrix with NaN reasons and optional statistics."""

    metric: Any
    values: np.ndarray
    reasons: np.ndarray
    p_values: np.ndarray | None = None
    ci: tuple[np.ndarray, np.ndarray] | None = None
    baseline: np.ndarray | None = None


@dataclass
class Comparison:
    """Everything `zoo compare` reports, as data (the CLI draws and writes it)."""

    a: Side
    b: Side
    data: str
    n: int
    reduction: str
    paired_a: list[np.ndarray] = field(default_factory=list, repr=False)
    paired_b: list[np.ndarray] = field(default_factory=list, repr=False)
    results: dict[str, MetricResult] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """The tidy table: one row per (layer_a, layer_b, metric)."""
        out = []
        for name, r in self.results.items():
            for i, la in enumerate(self.a.layers):
                for j, lb in enumerate(self.b.layers):
                    row = {"model_a": self.a.model, "layer_a": la.name, "role_a": la.role,
                           "model_b": self.b.model, "layer_b": lb.name, "role_b": lb.role,
                           "metric": name, "value": float(r.values[i, j]), "n": self.n,
                           "reduction": self.reduction, "reason": r.reasons[i, j]}
                    if r.p_values is not None:
                        row["p_value"] = float(r.p_values[i, j])
                    if r.ci is not None:
                        row["ci_low"], row["ci_high"] = float(r.ci[0][i, j]), float(r.ci[1][i, j])
                    if r.baseline is not None:
                        row["baseline"] = float(r.baseline[i, j])
                    out.append(row)
        return out

    def best_matches(self, metric: str) -> list[dict[str, Any]]:
        """For each layer of A, the layer of B that it matches best under `metric`."""
        r = self.results[metric]
        better = np.nanargmin if r.metric.kind == "distance" else np.nanargmax
        out = []
        for i, la in enumerate(self.a.layers):
            row = r.values[i]
            if np.isnan(row).all():
                out.append({"layer_a": la.name, "role_a": la.role, "best_b": "", "role_b": "",
                            "value": float("nan")})
                continue
            j = int(better(row))
            match = {"layer_a": la.name, "role_a": la.role, "best_b": self.b.layers[j].name,
                     "role_b": self.b.layers[j].role, "value": float(row[j])}
            if r.p_values is not None:
                match["p_value"] = float(r.p_values[i, j])
            out.append(match)
        return out

    def role_summary(self, metric: str) -> list[dict[str, Any]]:
        """Mean, max and count of `metric` per (role of A, role of B) block, e.g. encoder vs
        decoder."""
        r = self.results[metric]
        out = []
        for ra in dict.fromkeys(self.a.roles):
            for rb in dict.fromkeys(self.b.roles):
                block = r.values[np.ix_([x == ra for x in self.a.roles],
                                        [x == rb for x in self.b.roles])]
                finite = block[np.isfinite(block)]
                out.append({"role_a": ra, "role_b": rb, "metric": metric,
                            "mean": float(finite.mean()) if finite.size else float("nan"),
                            "max": float(finite.max()) if finite.size else float("nan"),
                            "pairs": int(block.size)})
        return out


def side_features(model: ZooModel, dataset: Dataset, layers: Sequence[str] | None,
                  reduction: str, batch_size: int = 16, cache: FeatureCache | None = None,
                  progress: Progress | None = None) -> tuple[Side, list[str]]:
    """Extract a model's layers (ordered by depth) and return them with their row ids."""
    names = select_layers(list(model.layers), layers, model.id)
    infos = sorted((model.layer(n) for n in names), key=lambda i: i.depth)
    feats = extract(model, dataset, [i.name for i in infos], reduction, batch_size, cache,
                    progress)
    ids = feats[infos[0].name].sample_ids
    return Side(model.id, model.random_init, infos, [feats[i.name].data for i in infos]), ids


def compare_sides(a: Side, ids_a: list[str], b: Side, ids_b: list[str], metrics: Sequence[Any],
                  data: str, reduction: str, device: str = "cpu",
                  params: dict[str, dict] | None = None,
                  progress: Progress | None = None) -> Comparison:
    """Score every metric on every (layer of A, layer of B) pair, rows paired by sample id."""
    ia, ib = pair_by_ids(ids_a, ids_b)
    comparison = Comparison(a, b, data, len(ia), reduction, paired_a=[r[ia] for r in a.reps],
                            paired_b=[r[ib] for r in b.reps])
    for metric in metrics:
        kw = (params or {}).get(metric.name, {})
        values, reasons = all_pairs(metric, comparison.paired_a, comparison.paired_b,
                                    device=device, progress=progress, **kw)
        comparison.results[metric.name] = MetricResult(metric, values,
                                                       np.asarray(reasons, dtype=object))
    return comparison


@dataclass
class ZooMatrix:
    """All (model, layer) pairs across several models under one metric."""

    sides: list[Side]
    metric: Any
    values: np.ndarray
    reasons: np.ndarray
    n: int

    @property
    def labels(self) -> list[tuple[str, str]]:
        return [(s.model, i.name) for s in self.sides for i in s.layers]


def zoo_matrix(sides: Sequence[Side], ids: Sequence[list[str]], metric: Any,
               device: str = "cpu", progress: Progress | None = None,
               params: dict | None = None) -> ZooMatrix:
    """Score every (model, layer) against every other, rows paired by sample id to the first."""
    reps = []
    for side, side_ids in zip(sides, ids):
        _, idx = pair_by_ids(ids[0], side_ids)
        reps += [r[idx] for r in side.reps]
    values, reasons = all_pairs(metric, reps, None, device=device, progress=progress,
                                **(params or {}))
    return ZooMatrix(list(sides), metric, values, np.asarray(reasons, dtype=object),
                     len(ids[0]))
