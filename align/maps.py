"""Linear channel maps into a shared space, one per (model, layer), and their files.

A folder of maps holds `maps.json` (dim, keys, provenance) and two .npy files per map; keys are
`model:layer`. Files are written atomically and the manifest last, so a folder with a manifest
is complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError

MANIFEST = "maps.json"


@dataclass(frozen=True)
class LinearMap:
    """x -> x @ weight + bias, from a layer's C channels (weight (C, D)) to the shared D."""

    weight: np.ndarray
    bias: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map channels-last features (..., C) to (..., D)."""
        if x.shape[-1] != self.weight.shape[0]:
            raise DataError(f"map expects {self.weight.shape[0]} channels, features have "
                            f"{x.shape[-1]}")
        return (np.asarray(x, np.float32) @ self.weight + self.bias).astype(np.float32)


def map_key(model: str, layer: str) -> str:
    """The key of one (model, layer): `model:layer`."""
    return f"{model}:{layer}"


def file_stem(key: str) -> str:
    """A file-name-safe stem for a key (`toy/cnn:stage1` -> `toy_cnn__stage1`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", key.replace(":", "__"))


def save_maps(folder: str | Path, maps: Mapping[str, LinearMap], meta: Mapping[str, Any]) -> Path:
    """Write every map's weight and bias (.npy), then `maps.json` with `meta` (provenance)."""
    from zoo.io import write_json, write_npy

    folder = Path(folder)
    entries = {}
    for key, lin in maps.items():
        stem = file_stem(key)
        write_npy(folder / f"{stem}.weight.npy", lin.weight)
        write_npy(folder / f"{stem}.bias.npy", lin.bias)
        entries[key] = {"weight": f"{stem}.weight.npy", "bias": f"{stem}.bias.npy",
                        "channels": int(lin.weight.shape[0])}
    dims = {int(lin.weight.shape[1]) for lin in maps.values()}
    return write_json(folder / MANIFEST, {**meta, "dim": dims.pop() if len(dims) == 1 else None,
                                          "maps": entries})


def load_maps(folder: str | Path) -> dict[str, LinearMap]:
    """Read a folder written by `save_maps` (by `zoo align`)."""
    folder = Path(folder).expanduser()
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{folder} has no {MANIFEST}; pass a folder written by `zoo align`")
    try:
        entries = json.loads(manifest.read_text())["maps"]
        return {key: LinearMap(np.load(folder / e["weight"], allow_pickle=False),
                               np.load(folder / e["bias"], allow_pickle=False))
                for key, e in entries.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read maps in {folder}: {type(exc).__name__}: {exc}; rerun "
                        "`zoo align`") from None
