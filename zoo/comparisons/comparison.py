"""Layer-by-layer comparison of two feature sets: rows paired by sample id, one matrix per
metric with the reason for every undefined cell, statistics, best matches and role summaries.

`compare(a, b, ...)` returns a `Comparison`; `.table()` is the tidy DataFrame, `.heatmap(m)` a
figure, `.save(folder)` writes exactly what `zoo compare` writes (see `zoo.report.comparison`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.engine.allpairs import all_pairs
from zoo.engine.results import P_ADJUST, reason_counts, tidy_rows, value_scale
from zoo.errors import ZooError
from zoo.features.layers import check_same_data, pair_by_ids
from zoo.result import Result

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from matplotlib.figure import Figure

    from zoo.data.dataset import Dataset
    from zoo.features.cache import FeatureCache
    from zoo.features.featureset import FeatureSet
    from zoo.model.base import ZooModel
    from zoo.progress import Progress

DEFAULT_METRICS = ("cka", "cka-debiased", "cka-rbf", "svcca", "rsa")
# A saved row's labels; every other column but `value` is a per-pair statistic.
LABELS = {f"{k}_{s}" for k in ("model", "layer", "role", "depth", "random_init") for s in "ab"} | {
    "metric", "reason", "n", "reduction"}


@dataclass
class MetricResult:
    """One metric's layer x layer matrix with NaN reasons and the statistics computed for it.

    `stats` holds (layers A x layers B) arrays: p_value (permutation), p_adjusted
    (Benjamini-Hochberg over the layer pairs), critical and calibrated (zoo.metrics.nulls),
    p_best/p_best_adjusted (on each row's best cell: the best-match null), ci_low/ci_high
    (grouped-jackknife 95% interval), baseline (expected value for unrelated data). `aggregates`
    holds the role-mean and model-max nulls. `notes` are caveats for readers (e.g. why a
    statistic is missing).
    """

    metric: Any
    values: np.ndarray
    reasons: np.ndarray
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    aggregates: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metric.name

    def reason_counts(self) -> dict[str, int]:
        """How many undefined cells each reason explains."""
        return reason_counts(self.reasons, self.values)


@dataclass(repr=False)
class Comparison(Result):
    """Two feature sets compared on the same samples: every metric's matrix and statistics.
    A comparison read back by `load` has its matrices and labels but not the features."""

    a: FeatureSet
    b: FeatureSet
    n: int
    paired_a: list[np.ndarray] = field(repr=False)
    paired_b: list[np.ndarray] = field(repr=False)
    results: dict[str, MetricResult] = field(default_factory=dict)
    activations: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    inputs: list[np.ndarray] = field(default_factory=list, repr=False)
    sections: list[tuple[str, str]] = field(default_factory=list, repr=False)

    marker = "results.json"

    @property
    def data(self) -> str:
        return self.a.data

    @property
    def reduction(self) -> str:
        return self.a.reduction

    @property
    def metrics(self) -> list[str]:
        return list(self.results)

    def result(self, metric: str | None = None) -> MetricResult:
        """The result of `metric` (default: the first one computed)."""
        name = metric or self.metrics[0]
        if name not in self.results:
            raise ZooError(f"metric {name!r} was not computed here; computed: "
                           f"{', '.join(self.results)}")
        return self.results[name]

    def rows(self) -> list[dict[str, Any]]:
        """The tidy rows of every metric (see `zoo.engine.results.tidy_rows`)."""
        la, lb = _labels(self.a), _labels(self.b)
        return [row for r in self.results.values()
                for row in tidy_rows(r.name, r.values, r.reasons, la, lb, n=self.n,
                                     reduction=self.reduction, stats=r.stats)]

    def table(self) -> pd.DataFrame:
        """One row per (layer of A, layer of B, metric): labels, value, reason, statistics."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (results.json without the rows): models, data, n, reduction, and
        per metric its best matches, role summary, undefined reasons and notes."""
        from zoo.report.comparison import summary

        return summary(self)

    def headline(self) -> str:
        return (f"{self.a.label} vs {self.b.label}: {len(self.a)} x {len(self.b)} layers, "
                f"n={self.n}, {', '.join(self.metrics)}")

    @classmethod
    def load(cls, folder: str | Path) -> Comparison:
        """A comparison saved by `save`: its matrices, statistics, labels and notes."""
        import json
        from pathlib import Path

        from zoo.features.featureset import FeatureSet
        from zoo.metrics import get
        from zoo.registry.specs import LayerInfo

        info = json.loads((Path(folder) / "results.json").read_text())
        a, b = (FeatureSet(info[f"model_{s}"], info[f"random_init_{s}"],
                           [LayerInfo(**d) for d in info[f"layers_{s}"]], {},
                           info["reduction"], info["data"], info[f"provenance_{s}"])
                for s in "ab")
        c = cls(a, b, info["n"], [], [])
        index_a, index_b = ({n: k for k, n in enumerate(fs.names)} for fs in (a, b))
        for name, meta in info["metrics"].items():
            shape = (len(a), len(b))
            values, reasons = np.full(shape, np.nan), np.full(shape, "", dtype=object)
            stats: dict[str, np.ndarray] = {}
            for row in (r for r in info["rows"] if r["metric"] == name):
                i, j = index_a[row["layer_a"]], index_b[row["layer_b"]]
                values[i, j] = np.nan if row["value"] is None else row["value"]
                reasons[i, j] = row["reason"]
                for key in (k for k in row if k not in LABELS and k != "value"):
                    stats.setdefault(key, np.full(shape, np.nan))[i, j] = (
                        np.nan if row[key] is None else row[key])
            c.results[name] = MetricResult(get(name), values, reasons, stats,
                                           list(meta["notes"]))
        return c

    def values(self, metric: str | None = None) -> pd.DataFrame:
        """The metric's layer x layer matrix as a DataFrame (rows: A's layers, columns: B's)."""
        import pandas as pd

        r = self.result(metric)
        return pd.DataFrame(r.values, index=self.a.names, columns=self.b.names)

    def best_matches(self, metric: str | None = None) -> pd.DataFrame:
        """For each layer of A, the layer of B that it matches best under `metric`, with its
        p-values when computed (undefined rows carry the reason)."""
        import pandas as pd

        return pd.DataFrame(self.best_match_rows(metric))

    def best_match_rows(self, metric: str | None = None) -> list[dict[str, Any]]:
        """`best_matches` as one dict per layer of A (for JSON)."""
        r = self.result(metric)
        better = np.nanargmin if r.metric.kind == "distance" else np.nanargmax
        out = []
        for i, la in enumerate(self.a.layers):
            row = r.values[i]
            match: dict[str, Any] = {"layer_a": la.name, "role_a": la.role}
            if np.isnan(row).all():
                out.append({**match, "best_b": "", "role_b": "", "value": None,
                            "reason": str(r.reasons[i, 0])})
                continue
            j = int(better(row))
            match.update(best_b=self.b.layers[j].name, role_b=self.b.layers[j].role,
                         value=float(row[j]), reason="")
            for key in ("p_value", "p_adjusted", "calibrated", "p_best", "p_best_adjusted",
                        "ci_low", "ci_high"):
                if key in r.stats:
                    match[key] = float(r.stats[key][i, j])
            out.append(match)
        return out

    def role_summary(self, metric: str | None = None) -> list[dict[str, Any]]:
        """Mean, max and count of `metric` per (role of A, role of B) block, e.g. encoder vs
        decoder; a block with no defined value says how many pairs are undefined."""
        r = self.result(metric)
        out = []
        for ra in dict.fromkeys(self.a.roles):
            for rb in dict.fromkeys(self.b.roles):
                block = r.values[np.ix_([x == ra for x in self.a.roles],
                                        [x == rb for x in self.b.roles])]
                finite = block[np.isfinite(block)]
                out.append({"role_a": ra, "role_b": rb, "metric": r.name,
                            "mean": float(finite.mean()) if finite.size else None,
                            "max": float(finite.max()) if finite.size else None,
                            "pairs": int(block.size), "undefined": int(block.size - finite.size)})
        for row, tested in zip(out, r.aggregates.get("roles", ())):  # same block order
            row.update(p_mean=tested["p_mean"], p_mean_adjusted=tested["p_mean_adjusted"])
        return out

    def heatmap(self, metric: str | None = None, scale: str = "fixed") -> Figure:
        """The metric's layer x layer heatmap (a matplotlib Figure; no global backend change).

        `scale="fixed"` uses the metric's range (0-1 for bounded similarities), "auto" the data's.
        """
        from zoo.report.figures import heatmap_figure

        r = self.result(metric)
        fixed = value_scale(r.metric, r.values) if scale == "fixed" else None
        return heatmap_figure(
            r.values, self.a.names, self.b.names, self.a.roles, self.b.roles,
            f"{r.name}: {self.a.label} vs {self.b.label} (n={self.n}, {self.reduction})",
            self.a.label, self.b.label, reasons=r.reasons, scale=fixed,
            note=" ".join(self.baseline_notes(r.name) + r.notes + self.caveats(r.name)))

    def baseline_notes(self, metric: str | None = None) -> list[str]:
        """What unrelated data scores (expected value, permutation null) and how many pairs
        beat the null after correction, as sentences for figures and reports."""
        r = self.result(metric)
        out = []
        if "baseline" in r.stats:
            out.append(f"Expected {r.name} for unrelated data at n={self.n}: "
                       f"{np.nanmean(r.stats['baseline']):.3f} on average over pairs.")
        if "p_adjusted" in r.stats:
            raw, adj = r.stats["p_value"], r.stats["p_adjusted"]
            finite = np.isfinite(adj)
            pairs = int(finite.sum())
            out.append(f"{int((adj[finite] < 0.05).sum())} of {pairs} pairs beat the permutation "
                       f"null (p < 0.05, {P_ADJUST}-adjusted for {pairs} pairs; "
                       f"{int((raw[finite] < 0.05).sum())} uncorrected).")
            if pairs and np.nanmin(raw) >= 0.05:  # p >= 1 / (permutations + 1)
                out.append(f"With {round(1 / np.nanmin(raw)) - 1} permutations no p-value can "
                           "fall below 0.05: use at least 20.")
        if r.aggregates:
            from zoo.metrics.nulls import aggregate_notes

            out += aggregate_notes(r.aggregates, self.a.names, self.b.names)
        return out

    def caveats(self, metric: str | None = None) -> list[str]:
        """Warnings a reader needs before trusting the values (small n against the widths)."""
        r = self.result(metric)
        widths = [x.shape[1] for x in self.paired_a + self.paired_b]
        out = []
        if widths and self.n <= max(widths) and r.name != "cka-debiased":
            out.append(f"n={self.n} samples against feature widths {min(widths)}-{max(widths)}: "
                       "with n at or below the width, unrelated data can score high; compare "
                       "with the baseline or the permutation null.")
        return out

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write results.csv/json, heatmaps, activations.png and report.html into `folder`
        as a unit (see `zoo.report.comparison.write_comparison`); returns the folder."""
        from zoo.report.comparison import write_comparison

        return write_comparison(self, folder, overwrite)


def _labels(fs: FeatureSet) -> list[dict[str, Any]]:
    return [{"model": fs.model, "layer": i.name, "role": i.role, "depth": i.depth}
            for i in fs.layers]


def resolve_metrics(metrics: Sequence[str | Any] | str | None) -> list[Any]:
    """Metric objects for names (comma-separated or a list; None: the defaults)."""
    from zoo.metrics import get

    if metrics is None:
        metrics = DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    return [get(m) for m in metrics]


def compare(a: FeatureSet, b: FeatureSet, metrics: Sequence[str | Any] | str | None = None, *,
            permutations: int = 0, intervals: bool = False, device: str = "cpu",
            progress: Progress | None = None) -> Comparison:
    """Score every metric on every (layer of A, layer of B) pair, rows paired by sample id,
    with permutation p-values (Benjamini-Hochberg-adjusted over pairs) and 95% intervals (grouped
    jackknife, for the metrics whose coverage is tested) if asked."""
    from zoo.progress import tagged

    check_comparable(a, b)
    ia, ib = pair_by_ids(a.sample_ids, b.sample_ids)
    c = Comparison(a, b, len(ia), [x[ia] for x in a.arrays()], [x[ib] for x in b.arrays()])
    for metric in resolve_metrics(metrics):
        values, reasons = all_pairs(metric, c.paired_a, c.paired_b, device=device,
                                    progress=tagged(progress, metric.name))
        c.results[metric.name] = MetricResult(metric, values, np.asarray(reasons, dtype=object))
        add_statistics(c, c.results[metric.name], permutations, intervals, device, progress)
    return c


def check_comparable(a: FeatureSet, b: FeatureSet) -> None:
    """Two feature sets compare only when reduced alike and taken over the same data; else a
    clear error (their rows are then paired by sample id)."""
    if a.reduction != b.reduction:
        raise ZooError(f"{a.label} was reduced by {a.reduction!r} and {b.label} by "
                       f"{b.reduction!r}; extract both with the same reduction")
    check_same_data(a.data, a.data_fingerprint, b.data, b.data_fingerprint)


def add_statistics(c: Comparison, r: MetricResult, permutations: int, intervals: bool,
                   device: str, progress: Progress | None = None) -> None:
    """Permutation p-values (raw and Benjamini-Hochberg-adjusted), calibrated scores and the
    aggregate nulls (zoo.metrics.nulls), 95% intervals, and the expected value for
    unrelated data (biased linear CKA) for one metric of comparison `c`; a missing interval
    says why in the result's notes."""
    from zoo.metrics.nulls import null_statistics, permutation_draws
    from zoo.metrics.stats import confidence_intervals, expected_cka_matrix
    from zoo.progress import tagged

    if permutations:
        draws = permutation_draws(r.metric, c.paired_a, c.paired_b, permutations=permutations,
                                  device=device, progress=tagged(progress, r.name))
        stats, r.aggregates = null_statistics(draws, r.metric, c.a.roles, c.b.roles)
        r.stats.update(stats)
    if intervals:
        try:
            low, high, why = confidence_intervals(r.metric, c.paired_a, c.paired_b,
                                                  device=device,
                                                  progress=tagged(progress, r.name))
            r.stats["ci_low"], r.stats["ci_high"] = low, high
            for reason, count in reason_counts(np.asarray(why, dtype=object), low).items():
                r.notes.append(f"No interval for {count} pair(s): {reason}.")
        except ZooError as exc:
            if not hasattr(exc, "reason"):
                raise
            r.notes.append(f"{exc.reason}.")
    if r.name == "cka":
        r.stats["baseline"] = expected_cka_matrix(c.paired_a, c.paired_b)


def compare_models(model_a: ZooModel, model_b: ZooModel, dataset: Dataset,
                   metrics: Sequence[str | Any] | str | None = None, *,
                   layers_a: Sequence[str] | None = None, layers_b: Sequence[str] | None = None,
                   reduction: str = "gap", permutations: int = 0, intervals: bool = False,
                   images: int = 4, device: str = "cpu", batch_size: int = 16,
                   cache: FeatureCache | None = None, progress: Progress | None = None,
                   workers: int = 0, precision: str = "fp32") -> Comparison:
    """Extract both models over `dataset` (`workers` loader processes, forward `precision`),
    compare them, and add PCA-to-RGB activation maps of the first `images` images (what
    `zoo compare` reports)."""
    from zoo.features.featureset import extract_set
    from zoo.model.selection import select_for

    models = {model_a.id: list(model_a.layers), model_b.id: list(model_b.layers)}
    if layers_a == layers_b:  # one set of patterns for both: the selector's joint rule
        picked = select_for(models, layers_a)
        layers_a, layers_b = picked[model_a.id], picked[model_b.id]
    a, b = (extract_set(model, dataset, layers, reduction, batch_size, cache, progress,
                        workers=workers, precision=precision)
            for model, layers in ((model_a, layers_a), (model_b, layers_b)))
    c = compare(a, b, metrics, permutations=permutations, intervals=intervals, device=device,
                progress=progress)
    if images:
        c.activations = activation_maps([model_a, model_b], [a, b], dataset, images, cache,
                                        precision=precision)
        size = next((v.shape[2] for m in c.activations.values() for v in m.values()), 16)
        c.inputs = [np.asarray(dataset.image(i).convert("RGB").resize((size * 4, size * 4)))
                    for i in range(min(images, len(dataset)))]
    return c


def activation_maps(models: Sequence[ZooModel], sets: Sequence[FeatureSet], dataset: Dataset,
                    images: int, cache: FeatureCache | None, per_model: int = 6,
                    precision: str = "fp32") -> dict[str, dict[str, np.ndarray]]:
    """PCA-to-RGB maps of up to `per_model` spatial layers (spread over depth) per model, for
    the first `images` images: {model label: {layer: (images, h, w, 3)}}."""
    from zoo.features.extraction import extract
    from zoo.features.layers import LayerFeatures
    from zoo.report.figures import pca_rgb

    subset = dataset.subset(range(min(images, len(dataset))))
    out: dict[str, dict[str, np.ndarray]] = {}
    for model, fs in zip(models, sets):
        spatial = [i for i in fs.layers if i.has_grid]
        if not spatial:
            continue
        pick = [spatial[k] for k in sorted({round(x) for x in
                                            np.linspace(0, len(spatial) - 1, per_model)})]
        feats = extract(model, subset, [i.name for i in pick], "none", cache=cache,
                        precision=precision)
        out[fs.label] = {i.name: pca_rgb(LayerFeatures.spatial(feats[i.name])) for i in pick}
    return out
