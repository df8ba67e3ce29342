"""Saved dissection and LCE folders read back into `DissectRun` and `LCEResult` (`zoo.open`).

Numbers come back exactly: the .npy arrays as saved, and CSV/JSON floats are written as
Python's shortest round-trip repr (an empty CSV cell or a JSON null is a NaN).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.result import NotSaved, number, reading

if TYPE_CHECKING:
    from zoo.concepts.embedding import Correlation, LCEResult
    from zoo.concepts.pipeline import DissectRun

DISSECT_SETTINGS = ("quantile", "iou_cutoff", "stability_resamples")  # dissect_model's


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """A CSV table's header and rows, read by position (concept names may equal other
    columns' names)."""
    with open(path, newline="", encoding="utf-8") as stream:
        header, *rows = list(csv.reader(stream))
    return header, rows


def floats(cells: list[str], dtype: type = np.float64) -> np.ndarray:
    """CSV cells as numbers; an empty cell is the NaN it was written for."""
    return np.array([float(c) if c else np.nan for c in cells], dtype=dtype)


def read_dissect(folder: str | Path) -> DissectRun:
    """The `DissectRun` that `DissectRun.save` wrote in `folder`; its concept set has no
    images or labels."""
    from zoo.concepts.dissection import Dissection
    from zoo.concepts.labels import Concept, ConceptSet
    from zoo.concepts.pipeline import DissectRun
    from zoo.concepts.report import SUMMARY

    folder = Path(folder)
    with reading(folder, "zoo.concepts.dissect_model (zoo dissect)"):
        info = json.loads((folder / SUMMARY).read_text())
        _, rows = read_rows(folder / "concepts.csv")
        concepts = [Concept(name, category) for _, name, category in rows]
        ids = list(info["sample_ids"])
        missing = NotSaved(f"the images and labels of {info['concepts']} are not saved with a "
                           f"dissection read back from {folder}; open them again with "
                           f"zoo.concepts.open_concepts({info['concepts']!r})")
        concept_set = ConceptSet(info["concepts"], concepts, ids, [missing] * len(ids),
                                 [missing] * len(ids), info["concepts_fingerprint"])
        settings = {k: info[k] for k in DISSECT_SETTINGS}
        layers, stability = {}, {}
        for entry in info["layers"]:
            sub = folder / entry["folder"]
            header, units = read_rows(sub / "units.csv")
            column = {name: [row[k] for row in units] for k, name in enumerate(header)}
            layers[entry["layer"]] = Dissection(
                concepts, np.load(sub / "iou.npy", allow_pickle=False),
                floats(column["threshold"], np.float32), settings["quantile"],
                settings["iou_cutoff"])
            if "stability" in column:
                stability[entry["layer"]] = floats(column["stability"])
        return DissectRun(info["model"], info["random_init"], concept_set, layers, stability,
                          settings)


def _correlations(rows: list[dict], key: str) -> list[Correlation]:
    from zoo.concepts.embedding import Correlation

    return [Correlation(int(r["axis"].removeprefix("pc")) - 1, r[key], number(r["r"]),
                        number(r["p"]), r["n"], r["note"]) for r in rows]


def read_lce(folder: str | Path) -> LCEResult:
    """The `LCEResult` that `write_lce` wrote in `folder` (lce.json, lce.csv, matrix.csv,
    axes.csv)."""
    from zoo.concepts.embedding import LCEResult, ProfileEntry
    from zoo.concepts.labels import Concept

    folder = Path(folder)
    with reading(folder, "zoo.concepts.embed and save_lce (zoo lce)"):
        info = json.loads((folder / "lce.json").read_text())
        entries = [ProfileEntry(p["model"], p["layer"], p["counts"], p["categories"],
                                p["random_init"]) for p in info["profiles"]]
        columns = [Concept(n, c) for n, c in zip(info["concepts"], info["categories"])]
        axes = len(info["explained_variance"])
        _, coords = read_rows(folder / "lce.csv")  # entry, model, layer, random_init, pcs...
        _, matrix = read_rows(folder / "matrix.csv")  # entry, concepts...
        _, loadings = read_rows(folder / "axes.csv")  # axis, explained_variance, concepts...
        shape = (len(entries), len(columns))
        return LCEResult(
            entries, columns,
            np.array([floats(r[1:]) for r in matrix]).reshape(shape),
            np.array([floats(r[4:4 + axes]) for r in coords]).reshape(len(entries), axes),
            np.asarray(info["explained_variance"], np.float64),
            np.array([floats(r[2:]) for r in loadings]).reshape(axes, len(columns)),
            np.asarray(info["clusters"], dtype=int), info["k"], list(info["inertias"]),
            _correlations(info["axis_categories"], "category"),
            _correlations(info["performance"], "task"))
