"""Per-image target signals for the learned alignment, keyed by sample id.

A `.csv` has a header and a `sample_id` column (or the ids in its first column) plus numeric
columns; a `.npy` (images, values) needs its ids beside it, one per line in `FILE.ids.txt` or
as a JSON list in `FILE.ids.json`. Rows are matched to a dataset by id, never by position.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.errors import DataError


def _sidecar_ids(path: Path) -> list[str]:
    txt, js = path.with_suffix(".ids.txt"), path.with_suffix(".ids.json")
    if txt.is_file():
        return [line.strip() for line in txt.read_text().splitlines() if line.strip()]
    if js.is_file():
        return [str(v) for v in json.loads(js.read_text())]
    raise DataError(f"target {path} has no sample ids: write them beside it as {txt.name} "
                    f"(one per line) or {js.name}, or use a .csv with a sample_id column")


def _read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise DataError(f"target {path} needs a header row and at least one data row")
    header = rows[0]
    id_col = header.index("sample_id") if "sample_id" in header else 0
    ids = [r[id_col] for r in rows[1:]]
    try:
        values = np.array([[float(v) for j, v in enumerate(r) if j != id_col] for r in rows[1:]])
    except ValueError as exc:
        raise DataError(f"target {path}: non-numeric value ({exc}); all columns but "
                        f"{header[id_col]!r} must be numbers") from None
    return values, ids


def load_target(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read a target table: values (images, values) float64 and their sample ids."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"target file {str(path)!r} does not exist")
    if path.suffix == ".csv":
        values, ids = _read_csv(path)
    elif path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read target {path}: {exc}") from None
        ids = _sidecar_ids(path)
    else:
        raise DataError(f"target {path} must be .csv or .npy")
    values = values.reshape(len(values), -1)
    if len(ids) != len(values):
        raise DataError(f"target {path}: {len(ids)} sample ids for {len(values)} rows")
    if len(set(ids)) != len(ids):
        raise DataError(f"target {path} has duplicate sample ids")
    if not np.isfinite(values).all():
        raise DataError(f"target {path} has NaN or infinite values")
    return values, ids


def target_rows(values: np.ndarray, ids: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """The rows of `values` for the sample ids `wanted`, in that order (extra rows are unused)."""
    index = {sid: i for i, sid in enumerate(ids)}
    missing = [s for s in wanted if s not in index]
    if missing:
        raise DataError(f"the target has no row for {len(missing)} of {len(wanted)} images "
                        f"(e.g. {missing[:3]}); its ids must match the dataset's")
    return values[[index[s] for s in wanted]]
