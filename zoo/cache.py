"""Content-keyed feature cache on disk: .npy arrays plus a JSON manifest, never pickle.

    ROOT/features/<key>/features.npy + manifest.json   complete entries (write-once)
    ROOT/parts/<key>/fields.json                        what an unfinished entry is
    ROOT/parts/<key>/part-<start>-<stop>-<sha>.npy      its finished sample ranges

An entry is complete only when its manifest exists and the array's sha256 matches it; it is
built in a temporary folder and renamed into place, so concurrent writers of one entry cannot
tear it (the first rename wins, the others discard their copy). Parts are keyed by sample
range and carry their checksum in their name: a resumed run reuses every verified part whatever
its batch size, and a corrupt, empty or mis-shaped part is deleted and recomputed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError, environment_error
from zoo.features import LayerFeatures
from zoo.io import apply_umask, write_json, write_npy

FORMAT_VERSION = 2
_PART = re.compile(r"part-(\d{9})-(\d{9})-([0-9a-f]{16})\.npy")


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


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _discard(folder: Path) -> None:
    """Remove a folder another process may be reading or replacing: rename it away first."""
    tomb = folder.with_name(f".gone-{folder.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        folder.rename(tomb)
    except OSError:
        return
    shutil.rmtree(tomb, ignore_errors=True)


class FeatureCache:
    """Feature entries under `root` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise ZooError(f"the feature cache {self.root} is a file, not a folder; point "
                           "ZOO_CACHE_DIR at a folder (or pass --no-cache)")

    def _dir(self, key: str) -> Path:
        return self.root / "features" / key

    def _parts(self, key: str) -> Path:
        return self.root / "parts" / key

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed cache write into one message with the way out."""
        try:
            yield
        except OSError as exc:
            raise environment_error(exc, f"cannot write the feature cache {self.root}",
                                    "or point ZOO_CACHE_DIR elsewhere, or pass --no-cache"
                                    ) from None

    # complete entries ------------------------------------------------------------------------
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
            feats = LayerFeatures(data, manifest["layout"], manifest["sample_ids"],
                                  manifest.get("prefix_tokens", 0), dict(manifest["fields"]))
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            _discard(d)
            return None
        with contextlib.suppress(OSError):  # last use, for `cache prune` (shared caches too)
            os.utime(manifest_path)
        return feats

    def put(self, key: str, features: LayerFeatures, fields: dict[str, Any]) -> None:
        """Store a complete entry (built aside, renamed into place), then drop its parts."""
        final = self._dir(key)
        with self._writing():
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
            try:
                apply_umask(tmp, directory=True)
                write_npy(tmp / "features.npy", features.data)
                write_json(tmp / "manifest.json", {
                    "format": FORMAT_VERSION, "key": key, "fields": fields,
                    "layout": features.layout, "prefix_tokens": features.prefix_tokens,
                    "shape": list(features.data.shape), "dtype": str(features.data.dtype),
                    "sample_ids": features.sample_ids, "sha256": _sha256(tmp / "features.npy"),
                    "created": time.time()})
                try:
                    tmp.rename(final)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
            finally:  # another writer won the rename: its entry is the same content
                shutil.rmtree(tmp, ignore_errors=True)
        _discard(self._parts(key))

    # parts of an unfinished entry ------------------------------------------------------------
    def parts(self, key: str) -> dict[int, tuple[int, Path]]:
        """Stored sample ranges of an unfinished entry: {start: (stop, file)}."""
        folder = self._parts(key)
        out: dict[int, tuple[int, Path]] = {}
        if folder.is_dir():
            for path in folder.iterdir():
                m = _PART.fullmatch(path.name)
                if m and int(m[1]) < int(m[2]):
                    out[int(m[1])] = (int(m[2]), path)
        return out

    def read_part(self, path: Path, rows: int) -> np.ndarray | None:
        """A stored part if its checksum and row count hold; else it is deleted, and None."""
        try:
            digest = _PART.fullmatch(path.name)[3]
            if _sha256(path)[:16] != digest:
                raise ValueError("checksum mismatch")
            array = np.load(path, allow_pickle=False)
            if array.ndim < 2 or len(array) != rows:
                raise ValueError("wrong number of rows")
            return array
        except (OSError, ValueError, TypeError, EOFError):
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    def put_part(self, key: str, start: int, stop: int, array: np.ndarray,
                 fields: dict[str, Any]) -> None:
        """Store samples [start, stop) of an unfinished entry, checksummed, atomically."""
        folder = self._parts(key)
        with self._writing():
            try:
                if not (folder / "fields.json").is_file():
                    write_json(folder / "fields.json", fields)
                tmp = write_npy(folder / f".part-{start}-{stop}-{os.getpid()}.npy", array)
                digest = _sha256(tmp)[:16]
                os.replace(tmp, folder / f"part-{start:09d}-{stop:09d}-{digest}.npy")
            except FileNotFoundError:
                pass  # another writer finished the entry and removed its parts meanwhile

    def drop_parts(self, key: str) -> None:
        """Forget every part of an entry (they do not assemble)."""
        _discard(self._parts(key))

    # listing and clean-up --------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Manifests of complete entries (without sample ids), with `bytes` on disk and
        `used` (last read or write, epoch seconds), sorted by model, layer and reduction."""
        out = []
        for manifest_path in (self.root / "features").glob("*/manifest.json"):
            try:
                m = json.loads(manifest_path.read_text())
                m["used"] = manifest_path.stat().st_mtime
                m["bytes"] = _size(manifest_path.parent)
            except (OSError, ValueError):
                continue
            m.pop("sample_ids", None)
            m["path"] = str(manifest_path.parent)
            out.append(m)
        return sorted(out, key=lambda e: (str(e["fields"].get("model")),
                                          str(e["fields"].get("layer")),
                                          str(e["fields"].get("reduction")), e["key"]))

    def unfinished(self) -> list[dict[str, Any]]:
        """Unfinished entries (parts of interrupted extractions): fields, parts, bytes, used."""
        out = []
        for folder in sorted((self.root / "parts").glob("*")):
            try:
                fields = json.loads((folder / "fields.json").read_text())
            except (OSError, ValueError):
                fields = {}
            files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
            out.append({"key": folder.name, "fields": fields, "path": str(folder),
                        "parts": sum(bool(_PART.fullmatch(p.name)) for p in files),
                        "bytes": sum(p.stat().st_size for p in files),
                        "used": max([p.stat().st_mtime for p in files], default=0.0)})
        return out

    def remove(self, model: str | None = None) -> int:
        """Delete entries, complete or not (all, or those of models whose id starts with
        `model`); return how many."""
        removed = 0
        for entry in self.entries() + self.unfinished():
            if model is None or str(entry["fields"].get("model", "")).startswith(model):
                _discard(Path(entry["path"]))
                removed += 1
        if model is None:  # leftovers without a readable manifest
            for sub in ("features", "parts"):
                for folder in (self.root / sub).glob("*"):
                    _discard(folder)
        return removed

    def prune(self, older_than: float | None = None, max_size: int | None = None
              ) -> tuple[int, int]:
        """Delete entries unused for `older_than` seconds, then the least recently used until
        the cache holds at most `max_size` bytes; return (entries removed, bytes freed)."""
        items = sorted(self.entries() + self.unfinished(), key=lambda e: e["used"])
        total = sum(e["bytes"] for e in items)
        now, removed, freed = time.time(), 0, 0
        for entry in items:
            stale = older_than is not None and now - entry["used"] > older_than
            big = max_size is not None and total - freed > max_size
            if stale or big:
                _discard(Path(entry["path"]))
                removed, freed = removed + 1, freed + entry["bytes"]
        return removed, freed
