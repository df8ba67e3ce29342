"""Learned Concepts Embedding (LCE): concept profiles of many (model, layer) entries, embedded.

The matrix has one row per entry and one column per concept found in any entry; each count is
divided by the number of distinct concepts of its category among the columns, so a category with
many concepts does not dominate. PCA (centred, by SVD) gives up to 3 axes; KMeans (seeded) with
the elbow of its inertia curve groups the entries; each axis is explained by its correlation
with the entries' per-category unit counts, and optionally with downstream performance.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.concepts.labels import Concept
from zoo.errors import DataError, ZooError
from zoo.result import Result

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ProfileEntry:
    """One (model, layer) profile: labelled units per concept, and each concept's category."""

    model: str
    layer: str
    counts: dict[str, int]
    categories: dict[str, str]
    random_init: bool = False

    @property
    def name(self) -> str:
        return f"{self.model}:{self.layer}" + (" [random init]" if self.random_init else "")

    def category_counts(self) -> dict[str, int]:
        """Labelled units per category."""
        out: dict[str, int] = {}
        for concept, count in self.counts.items():
            out[self.categories[concept]] = out.get(self.categories[concept], 0) + count
        return out


@dataclass
class Correlation:
    """Pearson r of an axis with a variable, its two-sided p-value and the sample size."""

    axis: int
    variable: str
    r: float
    p: float
    n: int
    note: str = ""


@dataclass(repr=False)
class LCEResult(Result):
    """The embedding of the entries and what explains its axes. Read back by `load`
    (`zoo.open`) it is whole, except that each entry's `categories` covers only the concepts
    it counts (the rest of its concept set is not saved)."""

    entries: list[ProfileEntry]
    columns: list[Concept]
    matrix: np.ndarray
    coords: np.ndarray
    explained: np.ndarray
    loadings: np.ndarray
    clusters: np.ndarray
    k: int
    inertias: list[float]
    axis_categories: list[Correlation] = field(default_factory=list)
    performance: list[Correlation] = field(default_factory=list)

    marker = "lce.json"

    def table(self) -> pd.DataFrame:
        """One row per embedded (model, layer) entry: its coordinates and cluster."""
        import pandas as pd

        return pd.DataFrame([{"entry": e.name, **{f"axis{k + 1}": float(c) for k, c in
                                                   enumerate(xyz)}, "cluster": int(cl)}
                             for e, xyz, cl in zip(self.entries, self.coords, self.clusters)])

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary: entries, coordinates, explained variance, k and clusters."""
        return {"entries": [e.name for e in self.entries], "coords": self.coords,
                "explained_variance": self.explained, "k": self.k, "clusters": self.clusters}

    def headline(self) -> str:
        return f"{len(self.entries)} entries in {self.coords.shape[1]} axes, k={self.k}"

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """lce.csv, matrix.csv, axes.csv, correlations, lce.json and the 2-D/3-D plots."""
        from zoo.concepts.plot import plot_lce
        from zoo.concepts.report import write_lce
        from zoo.io import output_folder

        with output_folder(folder, overwrite=overwrite) as tmp:
            write_lce(tmp, self)
            plot_lce(self, tmp / "lce_2d.png", dims=2)
            plot_lce(self, tmp / "lce_3d.png", dims=3)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> LCEResult:
        """An embedding saved by `save` (`zoo.concepts.save_lce`, `zoo lce`)."""
        from zoo.concepts.saved import read_lce

        return read_lce(folder)


def lce_matrix(entries: list[ProfileEntry]) -> tuple[np.ndarray, list[Concept]]:
    """(entries, concepts) counts, each divided by its category's number of distinct concepts."""
    columns: dict[str, str] = {}
    for entry in entries:
        for concept, count in entry.counts.items():
            if count > 0:
                category = entry.categories[concept]
                if columns.setdefault(concept, category) != category:
                    raise DataError(f"concept {concept!r} is in category {columns[concept]!r} in "
                                    f"one profile and {category!r} in another")
    order = sorted(columns, key=lambda c: (columns[c], c))
    per_category = {cat: sum(1 for c in order if columns[c] == cat) for cat in columns.values()}
    matrix = np.array([[e.counts.get(c, 0) / per_category[columns[c]] for c in order]
                       for e in entries], dtype=np.float64).reshape(len(entries), len(order))
    return matrix, [Concept(c, columns[c]) for c in order]


def pca(matrix: np.ndarray, n_axes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred PCA by SVD: (coords (n, a), explained variance ratio (a,), loadings (a, m)).

    a = min(n_axes, n - 1, m). Signs are fixed so that each axis's largest-magnitude loading is
    positive.
    """
    n, m = matrix.shape
    centred = matrix - matrix.mean(axis=0) if n else matrix
    if n < 2 or not centred.any():
        raise ZooError(f"LCE needs at least 2 profiles that differ (got {n} profiles over {m} "
                       "concepts); dissect more models or layers, or lower the IoU cut-off")
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum())
    a = min(n_axes, n - 1, m)
    vt = vt[:a]
    signs = np.sign(vt[np.arange(a), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    return centred @ vt.T, s[:a] ** 2 / total, vt


def elbow(inertias: list[float]) -> int:
    """The k (1-based) farthest below the chord from the first to the last inertia."""
    if len(inertias) < 3 or inertias[0] <= inertias[-1]:
        return 1
    x = np.linspace(0.0, 1.0, len(inertias))
    y = (np.asarray(inertias) - inertias[-1]) / (inertias[0] - inertias[-1])
    gap = 1.0 - x - y
    return int(gap.argmax()) + 1 if gap.max() > 0 else 1


def kmeans_elbow(coords: np.ndarray, max_k: int = 8, seed: int = 0
                 ) -> tuple[int, np.ndarray, list[float]]:
    """KMeans for k = 1..max_k (seeded), k chosen by the elbow: (k, cluster labels, inertias)."""
    from sklearn.cluster import KMeans

    top = max(1, min(max_k, len(coords)))
    fits = [KMeans(n_clusters=k, n_init=10, random_state=seed).fit(coords)
            for k in range(1, top + 1)]
    inertias = [float(f.inertia_) for f in fits]
    k = elbow(inertias)
    return k, fits[k - 1].labels_.astype(int), inertias


def correlate(axis: int, variable: str, x: np.ndarray, y: np.ndarray) -> Correlation:
    """Pearson correlation with p-value, or NaN and the reason when it is undefined."""
    from scipy.stats import pearsonr

    n = len(x)
    if n < 3:
        return Correlation(axis, variable, np.nan, np.nan, n, f"undefined: {n} entries (< 3)")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(axis, variable, np.nan, np.nan, n, "undefined: a constant variable")
    r, p = pearsonr(x, y)
    return Correlation(axis, variable, float(r), float(p), n)


def read_performance(path: str | Path) -> list[tuple[str, str, float]]:
    """A performance table CSV with columns model, task, score -> (model, task, score) rows."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"performance table {str(path)!r} does not exist")
    with open(p, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = {"model", "task", "score"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"performance table {path} lacks columns {sorted(missing)}; "
                            "expected model,task,score")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((row["model"], row["task"], float(row["score"])))
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line}: score {row['score']!r} is not a number") from None
    return rows


def lce(entries: list[ProfileEntry], n_axes: int = 3, max_k: int = 8, seed: int = 0,
        performance: list[tuple[str, str, float]] | None = None) -> LCEResult:
    """Embed profiles, cluster them, and correlate the axes with category counts and scores.

    A performance row (model, task, score) applies to every entry of that model; each (axis,
    task) correlation uses the entries whose model has a score for the task.
    """
    matrix, columns = lce_matrix(entries)
    coords, explained, loadings = pca(matrix, n_axes)
    k, clusters, inertias = kmeans_elbow(coords, max_k, seed)
    categories = sorted({c.category for c in columns})
    counts = [e.category_counts() for e in entries]
    axis_categories = [correlate(a, cat, coords[:, a], np.array([c.get(cat, 0) for c in counts]))
                       for a in range(coords.shape[1]) for cat in categories]
    scores: dict[str, dict[str, float]] = {}
    for model, task, score in performance or []:
        scores.setdefault(task, {})[model] = score
    perf = []
    for task, by_model in scores.items():
        rows = [i for i, e in enumerate(entries) if e.model in by_model]
        y = np.array([by_model[entries[i].model] for i in rows])
        perf += [correlate(a, task, coords[rows, a], y) for a in range(coords.shape[1])]
    return LCEResult(entries, columns, matrix, coords, explained, loadings, clusters, k,
                     inertias, axis_categories, perf)
