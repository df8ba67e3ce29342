"""Reader for Broden-format concept folders (the data set of Network Dissection).

A Broden folder holds `index.csv` (one row per image; per category a `;`-separated cell of label
PNGs or whole-image label numbers), `category.csv`, `label.csv` and `c_<category>.csv`, and the
images and label PNGs under `images/`. A PNG pixel's label number is R + 256 * G. Each label
counts in its primary category: the one where its coverage (in `c_<category>.csv`) is largest.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.concepts.labels import Concept, ConceptSet, SampleLabels
from zoo.errors import DataError, ZooError

INDEX_FIELDS = ("image", "split", "ih", "iw", "sh", "sw")
ALIASES = {"color": "colour"}  # Broden spells the colour category the American way


def decode_label_png(path: Path) -> np.ndarray:
    """A Broden label PNG -> (H, W) int32 label numbers, R + 256 * G in integer arithmetic."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad file
        raise DataError(f"cannot read Broden label image {path}: {exc}") from None
    return rgb[..., 0].astype(np.int32) + 256 * rgb[..., 1].astype(np.int32)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"not a Broden folder: {path} is missing (need index.csv, category.csv, "
                        "label.csv and c_<category>.csv)")
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _int(row: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(row[key])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: column {key!r} must hold integers, got "
                        f"{row.get(key)!r}") from None


def _primary_categories(root: Path, categories: Sequence[str]) -> dict[int, str]:
    """Label number -> the selected category in which it has the largest coverage."""
    best: dict[int, tuple[float, int, str]] = {}
    for order, cat in enumerate(categories):
        path = root / f"c_{cat}.csv"
        for row in _read_csv(path):
            number = _int(row, "number", path)
            coverage = float(row.get("coverage") or 0.0)
            if number > 0 and (number not in best or (coverage, -order) > best[number][:2]):
                best[number] = (coverage, -order, cat)
    return {number: cat for number, (_, _, cat) in best.items()}


def read_broden(path: str, categories: Sequence[str] | None = None,
                split: str | None = None) -> ConceptSet:
    """Open a Broden folder, optionally restricted to some categories and one split."""
    from zoo.features.cache import cache_key

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"Broden folder {path!r} does not exist or is not a folder")
    available = [row["name"] for row in _read_csv(root / "category.csv")]
    chosen = list(categories) if categories else available
    missing = [c for c in chosen if c not in available]
    if missing:
        raise ZooError(f"Broden folder {path} has no categories {missing}; it has {available}")
    primary = _primary_categories(root, chosen)
    label_rows = _read_csv(root / "label.csv")
    names = {_int(r, "number", root / "label.csv"): r["name"] for r in label_rows}
    numbers = sorted(n for n in names if n in primary)
    lookup = np.zeros(max(names, default=0) + 1, np.int32)
    lookup[numbers] = np.arange(1, len(numbers) + 1)
    concepts = [Concept(names[n], ALIASES.get(primary[n], primary[n])) for n in numbers]

    index_path = root / "index.csv"
    rows = [r for r in _read_csv(index_path) if split is None or r.get("split") == split]
    cells = [{c: [s for s in (r.get(c) or "").split(";") if s] for c in chosen} for r in rows]
    keep = [i for i, cell in enumerate(cells) if any(cell.values())]
    if not keep:
        raise DataError(f"Broden folder {path} has no images annotated for {chosen}"
                        + (f" in split {split!r}" if split else ""))

    def labels(i: int) -> SampleLabels:
        row, cell = rows[i], cells[i]
        shape = (_int(row, "sh", index_path), _int(row, "sw", index_path))
        planes, whole = [], []
        for cat in chosen:
            for item in cell[cat]:
                if item.isdigit():
                    whole.append(_remap(np.array([int(item)]), lookup, index_path)[0])
                    continue
                plane = _remap(decode_label_png(root / "images" / item), lookup, root / item)
                if plane.shape != shape:
                    raise DataError(f"Broden label {item} is {plane.shape[::-1]} px but index.csv "
                                    f"says {shape[::-1]} (sw, sh) for {row['image']}")
                planes.append(plane)
        pixels = np.stack(planes) if planes else np.zeros((0, *shape), np.int32)
        annotated = frozenset(ALIASES.get(c, c) for c in chosen if cell[c])
        return SampleLabels(pixels, tuple(int(k) for k in whole if k), annotated)

    def image(i: int) -> Any:
        from PIL import Image

        return Image.open(root / "images" / rows[i]["image"])

    image_paths = [root / "images" / rows[i]["image"] for i in keep]
    stats = [[str(p.relative_to(root)), *_stat(p)] for p in image_paths]
    stats += [[name, *_stat(root / name)] for name in
              ["index.csv", "category.csv", "label.csv"] + [f"c_{c}.csv" for c in chosen]]
    fingerprint = cache_key({"broden": stats, "categories": chosen, "split": split})
    return ConceptSet(f"broden:{root}", concepts, [rows[i]["image"] for i in keep],
                      [lambda i=i: image(i) for i in keep], [lambda i=i: labels(i) for i in keep],
                      fingerprint)


def _stat(path: Path) -> list[int]:
    """[size, mtime_ns] of a file, or [-1, -1] when it is missing (reported when it is read)."""
    try:
        st = path.stat()
    except OSError:
        return [-1, -1]
    return [st.st_size, st.st_mtime_ns]


def _remap(numbers: np.ndarray, lookup: np.ndarray, where: Path) -> np.ndarray:
    """Broden label numbers -> concept numbers (0 for labels outside the chosen categories)."""
    if numbers.size and int(numbers.max()) >= len(lookup):
        raise DataError(f"{where}: label number {int(numbers.max())} is not in label.csv")
    return lookup[numbers]
