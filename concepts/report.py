"""Dissection and LCE results on disk: CSV/JSON/.npy tables written atomically, read back by LCE.

A dissection folder holds `dissect.json` (the run and every layer's profile, written last, so a
folder without it is incomplete) and one sub-folder per layer with `units.csv`, `profile.csv`,
`abstracted.csv` and `iou.npy` (units x concepts, columns as in `concepts.csv`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.concepts.dissection import Dissection
from zoo.concepts.embedding import Correlation, LCEResult, ProfileEntry
from zoo.concepts.labels import Concept
from zoo.errors import DataError
from zoo.io import to_jsonable, write_json, write_npy, write_text

SUMMARY = "dissect.json"


def write_table(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """Atomically write rows as CSV with a fixed header (an empty table keeps its header)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(to_jsonable(list(rows)))
    return write_text(path, buf.getvalue())


def layer_folder(folder: Path, layer: str) -> Path:
    """The sub-folder of one layer (path separators in the name replaced)."""
    return folder / layer.replace("/", "_").replace("\\", "_")


def write_layer(folder: Path, layer: str, dissection: Dissection,
                stability: np.ndarray | None = None) -> dict[str, Any]:
    """Write one layer's tables; returns its entry for `dissect.json`."""
    out = layer_folder(folder, layer)
    rows = dissection.unit_table()
    columns = ["unit", "concept", "category", "iou", "labelled", "threshold"]
    if stability is not None:
        columns.append("stability")
        for row, value in zip(rows, stability):
            row["stability"] = float(value)
    write_table(out / "units.csv", columns, rows)
    profile, abstracted = dissection.profile(), dissection.abstracted()
    write_table(out / "profile.csv", ["concept", "category", "units"],
                [{"concept": c, "category": dissection.category_of(c), "units": n}
                 for c, n in profile.items()])
    write_table(out / "abstracted.csv", ["category", "units", "concepts"],
                [{"category": c, **v} for c, v in abstracted.items()])
    write_npy(out / "iou.npy", dissection.iou)
    return {"layer": layer, "folder": out.name, "units": dissection.units,
            "labelled": int((dissection.labels() >= 0).sum()), "profile": profile,
            "abstracted": abstracted}


def write_summary(folder: Path, run: dict[str, Any], concepts: Sequence[Concept],
                  layers: list[dict[str, Any]]) -> Path:
    """Write `concepts.csv` and, last, `dissect.json` (the run, its concepts and layers)."""
    write_table(folder / "concepts.csv", ["column", "concept", "category"],
                [{"column": i, "concept": c.name, "category": c.category}
                 for i, c in enumerate(concepts)])
    categories = {c.name: c.category for c in concepts}
    return write_json(folder / SUMMARY, {**run, "categories": categories, "layers": layers})


def read_profiles(folders: Sequence[str | Path], layers: Sequence[str] | None = None
                  ) -> list[ProfileEntry]:
    """Every (model, layer) profile in the dissection folders (optionally only some layers)."""
    entries = []
    for folder in folders:
        path = Path(folder).expanduser() / SUMMARY
        if not path.is_file():
            raise DataError(f"{folder} has no {SUMMARY}: not a (complete) `zoo dissect` output "
                            "folder; run `zoo dissect ... --out FOLDER` first")
        try:
            summary = json.loads(path.read_text())
            for layer in summary["layers"]:
                if layers is None or layer["layer"] in layers:
                    entries.append(ProfileEntry(summary["model"], layer["layer"],
                                                dict(layer["profile"]), summary["categories"],
                                                bool(summary.get("random_init", False))))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not a valid dissection summary ({exc})") from None
    if not entries:
        raise DataError(f"no profiles found in {list(map(str, folders))}"
                        + (f" for layers {list(layers)}" if layers else ""))
    return entries


def _correlations(rows: list[Correlation], key: str) -> list[dict[str, Any]]:
    return [{"axis": f"pc{c.axis + 1}", key: c.variable, "r": c.r, "p": c.p, "n": c.n,
             "note": c.note} for c in rows]


def write_lce(folder: Path, result: LCEResult) -> None:
    """Write the embedding (`lce.csv`), its matrix, axes, correlations and `lce.json`."""
    axes = [f"pc{a + 1}" for a in range(result.coords.shape[1])]
    write_table(folder / "lce.csv", ["entry", "model", "layer", "random_init", *axes, "cluster"],
                [{"entry": e.name, "model": e.model, "layer": e.layer,
                  "random_init": e.random_init, **dict(zip(axes, result.coords[i])),
                  "cluster": int(result.clusters[i])}
                 for i, e in enumerate(result.entries)])
    names = [c.name for c in result.columns]
    write_table(folder / "matrix.csv", ["entry", *names],
                [{"entry": e.name, **dict(zip(names, result.matrix[i]))}
                 for i, e in enumerate(result.entries)])
    write_table(folder / "axes.csv", ["axis", "explained_variance", *names],
                [{"axis": a, "explained_variance": result.explained[i],
                  **dict(zip(names, result.loadings[i]))} for i, a in enumerate(axes)])
    cat_rows = _correlations(result.axis_categories, "category")
    write_table(folder / "axis_categories.csv", ["axis", "category", "r", "p", "n", "note"],
                cat_rows)
    perf_rows = _correlations(result.performance, "task")
    if perf_rows:
        write_table(folder / "performance.csv", ["axis", "task", "r", "p", "n", "note"],
                    perf_rows)
    write_json(folder / "lce.json", {
        "entries": [e.name for e in result.entries], "concepts": names,
        "categories": [c.category for c in result.columns],
        "explained_variance": result.explained, "k": result.k, "inertias": result.inertias,
        "clusters": result.clusters, "axis_categories": cat_rows, "performance": perf_rows,
        "profiles": [{"model": e.model, "layer": e.layer, "random_init": e.random_init,
                      "counts": e.counts,
                      "categories": {c: e.categories[c] for c in e.counts}}
                     for e in result.entries]})
