"""Content-keyed feature cache on disk: .npy arrays plus a JSON manifest, never pickle.

An entry is complete only when its manifest exists and the array's sha256 matches it; anything
else (truncated, corrupt, half-written) is treated as missing and recomputed. Extraction writes
one part per batch first, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo.features import LayerFeatures
from zoo.io import write_json, write_npy

FORMAT_VERSION = 1


def default_root() -> Path:
    """ZOO_CACHE_DIR, else ~/.cache/zoo."""
    env = os.environ.get("ZOO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"


def cache_key(fields: dict[str, Any]) -> str:
    """A stable hash of every field that can change the features."""
    blob = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """Feature entries under `root/features/<key>/` (features.npy + manifest.json)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def _dir(self, key: str) -> Path:
        return self.root / "features" / key

    def get(self, key: str) -> LayerFeatures | None:
        """The complete, verified entry for `key`, or None (a bad entry is removed)."""
        d = self._dir(key)
        manifest_path, array_path = d / "manifest.json", d / "features.npy"
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            if _sha256(array_path) != manifest["sha256"]:
                raise ValueError("checksum mismatch")
            data = np.load(array_path, allow_pickle=False)
            return LayerFeatures(data, manifest["layout"], manifest["sample_ids"],
                                 manifest.get("prefix_tokens", 0), dict(manifest["fields"]))
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            shutil.rmtree(d, ignore_errors=True)
            return None

    def done_parts(self, key: str) -> set[int]:
        """Indices of the batch parts already written for an unfinished entry."""
        parts = self._dir(key) / "parts"
        return {int(p.stem.split("-")[1]) for p in parts.glob("part-*.npy")} if parts.is_dir() else set()

    def put_part(self, key: str, index: int, array: np.ndarray) -> None:
        """Store one batch of an unfinished entry (atomically)."""
        write_npy(self._dir(key) / "parts" / f"part-{index:06d}.npy", array)

    def read_part(self, key: str, index: int) -> np.ndarray | None:
        """A stored batch, or None when it is missing or unreadable."""
        try:
            return np.load(self._dir(key) / "parts" / f"part-{index:06d}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, key: str, features: LayerFeatures, fields: dict[str, Any]) -> None:
        """Store a complete entry: array first, manifest last, then drop the parts."""
        d = self._dir(key)
        write_npy(d / "features.npy", features.data)
        write_json(d / "manifest.json", {
            "format": FORMAT_VERSION, "key": key, "fields": fields, "layout": features.layout,
            "prefix_tokens": features.prefix_tokens, "shape": list(features.data.shape),
            "dtype": str(features.data.dtype), "sample_ids": features.sample_ids,
            "sha256": _sha256(d / "features.npy"), "created": time.time()})
        shutil.rmtree(d / "parts", ignore_errors=True)

    def entries(self) -> list[dict[str, Any]]:
        """Manifests of complete entries (without sample ids), plus size on disk."""
        out = []
        for manifest_path in sorted((self.root / "features").glob("*/manifest.json")):
            try:
                m = json.loads(manifest_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            m.pop("sample_ids", None)
            m["bytes"] = sum(p.stat().st_size for p in manifest_path.parent.rglob("*") if p.is_file())
            out.append(m)
        return out

    def remove(self, model: str | None = None) -> int:
        """Delete entries (all, or those of models whose id starts with `model`); return count."""
        removed = 0
        features = self.root / "features"
        if not features.is_dir():
            return 0
        for d in sorted(p for p in features.iterdir() if p.is_dir()):
            if model is not None:
                try:
                    m = json.loads((d / "manifest.json").read_text())
                except (OSError, json.JSONDecodeError):
                    continue
                if not m["fields"]["model"].startswith(model):
                    continue
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        return removed
