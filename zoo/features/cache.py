"""Content-keyed feature cache on disk: .npy arrays plus a JSON manifest, never pickle.

    ROOT/features/<key>/features.npy + manifest.json   complete entries (write-once)
    ROOT/parts/<key>/fields.json                        what an unfinished entry is
    ROOT/parts/<key>/data-<token>.npy                   its array, preallocated, filled in place
    ROOT/parts/<key>/data-<token>.ranges                its finished sample ranges + checksums
    ROOT/locks/<key>                                    taken while an entry is merged and sealed

An unfinished entry is written once: each batch goes straight to its rows of the final array
(no fsync; its CRC-32 is appended to the sidecar), and a complete entry is that file renamed
into a temporary folder with its manifest, the folder then renamed into place. The manifest
lists every range's checksum, so a torn or corrupt range is caught on every read. A writer
holds an exclusive lock on its data file: a resumed run adopts the file of a dead writer
(reusing every range whose checksum holds, whatever its batch size) and merges in the ranges of
every other file whose writer is gone, while concurrent writers of one entry each fill their own
file: writers of the same samples race and the first rename wins; writers of different sample
ranges (a sharded `zoo matrix`) close their files, then take turns under the entry's seal lock
to merge them and seal the entry once every range is stored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError, environment_error
from zoo.features.layers import LayerFeatures
from zoo.io import cache_root, protect_input, to_jsonable

FORMAT_VERSION = 3
_BLOCK = 1 << 24  # bytes read at a time when verifying


def cache_key(fields: dict[str, Any]) -> str:
    """A stable hash of every field that can change the features."""
    blob = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _digest(buffer: Any, crc: int = 0) -> str:
    """CRC-32 of a byte buffer as 8 hex digits: catches torn and corrupt ranges at 2.5 GB/s
    (sha256 runs at half that; the cache guards against accidents, not adversaries)."""
    return f"{zlib.crc32(buffer, crc):08x}"


def _new_file(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new file under a random name in `folder`, open read-write, with the mode a plain
    open() gives (the kernel applies the umask: no chmod, no /proc read per file)."""
    for _ in range(8):
        path = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder under a random name in `parent`, with the mode a plain mkdir() gives."""
    for _ in range(8):
        path = parent / f"{prefix}{secrets.token_hex(8)}"
        try:
            path.mkdir(0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON under a temporary name, then rename: without fsync, as every byte the
    cache writes is checked on read (a manifest lost in a crash only costs a recompute)."""
    fd, tmp = _new_file(path.parent, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(json.dumps(to_jsonable(obj), indent=1))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def _header(fd: int) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of the C-ordered .npy open at `fd`."""
    with os.fdopen(os.dup(fd), "rb") as stream:
        version = np.lib.format.read_magic(stream)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(stream)
        if fortran or dtype.hasobject:
            raise ValueError("not a C-ordered numeric array")
        return tuple(shape), dtype, stream.tell()


def _read_rows(fd: int, offset: int, out: np.ndarray) -> None:
    """Fill `out` (C-contiguous) from the bytes of `fd` at `offset`; short files fail."""
    view, done = memoryview(out).cast("B"), 0
    while done < len(view):
        got = os.preadv(fd, [view[done:done + (1 << 30)]], offset + done)
        if got <= 0:
            raise ValueError("file too short")
        done += got


def _write_rows(fd: int, offset: int, array: np.ndarray) -> None:
    view, done = memoryview(array).cast("B"), 0
    while done < len(view):
        done += os.pwrite(fd, view[done:done + (1 << 30)], offset + done)


def _ranges(lines: str, samples: int) -> dict[int, tuple[int, str]]:
    """Sidecar lines "start stop digest" -> {start: (stop, digest)}; a later line replaces the
    ranges it overlaps (it overwrote their bytes), torn or out-of-range lines are ignored."""
    out: dict[int, tuple[int, str]] = {}
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        start, stop = int(parts[0]), int(parts[1])
        if not 0 <= start < stop <= samples or len(parts[2]) != 8:
            continue
        for s in [s for s, (e, _) in out.items() if s < stop and start < e]:
            del out[s]
        out[start] = (stop, parts[2])
    return out


class EntryWriter:
    """One writer of an unfinished entry: adopts a dead writer's data file or makes its own,
    writes sample ranges in place, and seals the entry. Not thread-safe; one user at a time."""

    def __init__(self, cache: FeatureCache, key: str, fields: dict[str, Any], samples: int,
                 rows_per_sample: int, dtype: str) -> None:
        self.cache, self.key, self.fields = cache, key, fields
        self.samples, self.rps, self.dtype = samples, rows_per_sample, np.dtype(dtype)
        self.folder = cache._parts(key)
        self.fd: int | None = None
        self.path: Path | None = None
        self.sidecar: Any = None
        self.row_shape: tuple[int, ...] | None = None
        self.offset = 0
        self.ranges: dict[int, tuple[int, str]] = {}  # start -> (stop, digest)
        self.verified: set[int] = set()
        with cache._writing():
            self._adopt()

    # setting up --------------------------------------------------------------------------------
    def _adopt(self) -> None:
        """Take over the most complete data file whose writer is gone, and copy into it the
        checksum-verified ranges of the other files whose writers are gone (shards that
        filled different sample ranges of one entry side by side), removing those files (a
        live writer keeps its lock, and its file)."""
        if not self.folder.is_dir():
            return
        found: list[tuple[int, int, Path, tuple, int, dict]] = []
        for path in sorted(self.folder.glob("data-*.npy")):
            fd = self._lock(path)
            if fd is None:
                continue
            try:
                shape, dtype, offset = _header(fd)
                if shape[:1] != (self.samples * self.rps,) or dtype != self.dtype or (
                        os.fstat(fd).st_size != offset + int(np.prod(shape)) * dtype.itemsize):
                    raise ValueError("another shape")
                ranges = _ranges(path.with_suffix(".ranges").read_text()
                                 if path.with_suffix(".ranges").is_file() else "", self.samples)
            except (OSError, ValueError, SyntaxError):
                self._remove(path, fd)
                continue
            found.append((sum(e - s for s, (e, _) in ranges.items()), fd, path, shape, offset,
                          ranges))
        if not found:
            return
        found.sort(key=lambda f: -f[0])
        _, self.fd, self.path, shape, self.offset, self.ranges = found[0]
        self.row_shape = shape[1:]
        self.sidecar = open(self.path.with_suffix(".ranges"), "a")  # noqa: SIM115
        for _, fd, path, other_shape, offset, ranges in found[1:]:
            if other_shape == shape:
                self._merge(fd, offset, ranges)
            self._remove(path, fd)

    def _merge(self, fd: int, offset: int, ranges: dict[int, tuple[int, str]]) -> None:
        """Copy the ranges of another data file (open at `fd`) that this one lacks, each only
        if its checksum holds."""
        size = self._row_bytes()
        for start, (stop, digest) in sorted(ranges.items()):
            if any(s < stop and start < e for s, (e, _) in self.ranges.items()):
                continue
            block = np.empty((stop - start) * size, np.uint8)
            try:
                _read_rows(fd, offset + start * size, block)
            except (OSError, ValueError):
                continue
            if _digest(block) != digest:
                continue
            _write_rows(self.fd, self.offset + start * size, block)
            self.sidecar.write(f"{start} {stop} {digest}\n")
            self.sidecar.flush()
            self.ranges[start] = (stop, digest)
            self.verified.add(start)

    @staticmethod
    def _lock(path: Path) -> int | None:
        """An fd of `path` holding its exclusive lock, or None (a live writer has it)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _remove(path: Path, fd: int | None) -> None:
        for p in (path, path.with_suffix(".ranges")):
            with contextlib.suppress(OSError):
                p.unlink()
        if fd is not None:
            os.close(fd)

    def _create(self, row_shape: tuple[int, ...]) -> None:
        """A new data file for the whole entry, locked, under a temporary name until ready."""
        shape = (self.samples * self.rps, *row_shape)
        for attempt in range(3):  # the folder may vanish under us when another writer seals
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if not (self.folder / "fields.json").is_file():
                    _write_json(self.folder / "fields.json", self.fields)
                fd, tmp = _new_file(self.folder, ".data-", ".npy")
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with os.fdopen(os.dup(fd), "wb") as stream:
                np.lib.format.write_array_header_1_0(stream, {
                    "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                    "shape": shape})
                self.offset = stream.tell()
            os.ftruncate(fd, self.offset + int(np.prod(shape)) * self.dtype.itemsize)
            path = tmp.with_name(tmp.name[1:])
            os.rename(tmp, path)
        except BaseException:
            self._remove(tmp, fd)
            raise
        self.fd, self.path, self.row_shape = fd, path, row_shape
        self.sidecar = open(path.with_suffix(".ranges"), "a")  # noqa: SIM115

    # ranges ------------------------------------------------------------------------------------
    def stored(self) -> dict[int, int]:
        """Finished sample ranges {start: stop}."""
        return {start: stop for start, (stop, _) in self.ranges.items()}

    def verify(self) -> None:
        """Check every adopted range against its checksum; forget those that fail."""
        for start, (stop, digest) in list(self.ranges.items()):
            if start in self.verified:
                continue
            try:
                ok = _digest(memoryview(self.read(start, stop)).cast("B")) == digest
            except (OSError, ValueError):
                ok = False
            if ok:
                self.verified.add(start)
            else:
                del self.ranges[start]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as stored (checked by `verify`, not here)."""
        out = np.empty(((stop - start) * self.rps, *self.row_shape), self.dtype)
        _read_rows(self.fd, self.offset + start * self._row_bytes(), out)
        return out

    def _row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.rps * self.dtype.itemsize

    def write(self, start: int, stop: int, array: np.ndarray) -> None:
        """Store samples [start, stop) in place and record their checksum (no fsync: a torn
        range fails its checksum on the next read and is recomputed)."""
        array = np.ascontiguousarray(array, dtype=self.dtype)
        with self.cache._writing(self):
            if self.fd is not None and array.shape[1:] != self.row_shape:
                self.discard()  # a dead writer's file of another shape: start afresh
            if self.fd is None:
                self._create(array.shape[1:])
            digest = _digest(memoryview(array).cast("B"))
            _write_rows(self.fd, self.offset + start * self._row_bytes(), array)
            self.sidecar.write(f"{start} {stop} {digest}\n")
            self.sidecar.flush()
        for s in [s for s, (e, _) in self.ranges.items() if s < stop and start < e]:
            del self.ranges[s]
        self.ranges[start] = (stop, digest)
        self.verified.add(start)

    # ending ------------------------------------------------------------------------------------
    def seal(self, layout: str, sample_ids: list[str], prefix_tokens: int = 0) -> Path:
        """Make the entry complete (every sample stored): rename the data file into place with
        its manifest; return the entry's array path (another writer's, if it won the race)."""
        covered = sorted((s, e) for s, (e, _) in self.ranges.items())
        if self.fd is None or [0] + [e for _, e in covered] != [s for s, _ in covered] + [
                self.samples]:
            raise ValueError(f"entry {self.key} is not complete")
        final = self.cache._dir(self.key)
        with self.cache._writing(self):
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = _new_folder(final.parent, f".tmp-{self.key}-")
            try:
                header = np.empty(self.offset, np.uint8)
                _read_rows(self.fd, 0, header)
                rows = self.rps
                os.rename(self.path, tmp / "features.npy")
                _write_json(tmp / "manifest.json", {
                    "format": FORMAT_VERSION, "key": self.key, "fields": self.fields,
                    "layout": layout, "prefix_tokens": prefix_tokens,
                    "shape": [self.samples * rows, *self.row_shape], "dtype": str(self.dtype),
                    "sample_ids": sample_ids, "header_crc32": _digest(header),
                    "ranges": [[s * rows, e * rows, self.ranges[s][1]] for s, e in covered],
                    "created": time.time()})
                try:
                    tmp.rename(final)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
            finally:  # another writer won the rename: its entry is the same content
                shutil.rmtree(tmp, ignore_errors=True)
        sidecar = self.path.with_suffix(".ranges")
        self.close()
        with contextlib.suppress(OSError):
            sidecar.unlink()
        self._tidy()
        return final / "features.npy"

    def _tidy(self) -> None:
        """Remove the parts folder once no writer, live or dead, has a file in it."""
        for path in self.folder.glob("data-*.npy"):
            fd = self._lock(path)
            if fd is not None:  # its writer is gone: the entry is complete now
                self._remove(path, fd)
        if not any(p.name.startswith(("data-", ".data-")) for p in self._listing()):
            with contextlib.suppress(OSError):
                (self.folder / "fields.json").unlink()
                self.folder.rmdir()

    def _listing(self) -> list[Path]:
        try:
            return list(self.folder.iterdir())
        except OSError:
            return []

    def discard(self) -> None:
        """Delete this writer's data file and forget its ranges."""
        if self.path is not None:
            self._remove(self.path, None)
        self.close()
        self.ranges, self.verified, self.row_shape, self.path = {}, set(), None, None

    def close(self) -> None:
        """Release the file and its lock (what is written stays, for a later resume)."""
        if self.sidecar is not None:
            with contextlib.suppress(OSError):
                self.sidecar.close()
            self.sidecar = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FeatureCache:
    """Feature entries under `root` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        if self.root.exists() and not self.root.is_dir():
            raise ZooError(f"the feature cache {self.root} is a file, not a folder; point "
                           "ZOO_CACHE_DIR at a folder (or pass --no-cache)")
        protect_input(self.root, "feature cache")

    def _dir(self, key: str) -> Path:
        return self.root / "features" / key

    def _parts(self, key: str) -> Path:
        return self.root / "parts" / key

    @contextlib.contextmanager
    def _writing(self, writer: EntryWriter | None = None) -> Iterator[None]:
        """Turn a failed cache write into one message with the way out (a writer that fails
        deletes its data file: a full disk gets its space back)."""
        try:
            yield
        except OSError as exc:
            if writer is not None:
                writer.discard()
                writer._tidy()
            raise environment_error(exc, f"cannot write the feature cache {self.root}",
                                    "or point ZOO_CACHE_DIR elsewhere, or pass --no-cache"
                                    ) from None

    # complete entries ------------------------------------------------------------------------
    def get(self, key: str, mmap: bool = False,
            ids: list[str] | None = None) -> LayerFeatures | None:
        """The complete, verified entry for `key`, or None (a bad entry is removed, as is one
        whose manifest names another key or, given `ids`, other sample ids). With `mmap`, the
        array is a read-only memory map (verified block by block, never loaded)."""
        d = self._dir(key)
        manifest_path, array_path = d / "manifest.json", d / "features.npy"
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest["key"] != key or (ids is not None and manifest["sample_ids"] != ids):
                raise ValueError("another entry's manifest")
            data = _verified(array_path, manifest, mmap)
            feats = LayerFeatures(data, manifest["layout"], manifest["sample_ids"],
                                  manifest.get("prefix_tokens", 0), dict(manifest["fields"]))
        except (OSError, ValueError, KeyError, TypeError, EOFError, SyntaxError):
            _discard(d)
            return None
        with contextlib.suppress(OSError):  # last use, for `cache prune` (shared caches too)
            os.utime(manifest_path)
        return feats

    def has(self, key: str) -> bool:
        """Whether a complete entry for `key` is on disk (not yet verified: see `get`)."""
        return (self._dir(key) / "manifest.json").is_file()

    def writer(self, key: str, fields: dict[str, Any], samples: int, rows_per_sample: int = 1,
               dtype: str = "float32") -> EntryWriter:
        """A writer for the unfinished entry `key` of `samples` samples (resuming a dead
        writer's ranges); `seal` it once every range is stored, `close` it otherwise."""
        return EntryWriter(self, key, fields, samples, rows_per_sample, dtype)

    def manifest(self, key: str) -> dict[str, Any] | None:
        """A complete entry's manifest (fields, sample ids, ...) without reading its array."""
        try:
            return json.loads((self._dir(key) / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def sealing(self, key: str) -> Iterator[None]:
        """Hold the entry's seal lock (blocking): processes that stored different sample
        ranges of one entry, each having closed its writer first, take turns opening a writer
        that merges their files and sealing it once complete, so the last one seals."""
        folder = self.root / "locks"
        with self._writing():
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def put(self, key: str, features: LayerFeatures, fields: dict[str, Any]) -> None:
        """Store a complete entry at once."""
        data = np.ascontiguousarray(features.data)
        writer = self.writer(key, fields, len(data), 1, str(data.dtype))
        try:
            writer.write(0, len(data), data)
            writer.seal(features.layout, features.sample_ids, features.prefix_tokens)
        finally:
            writer.close()

    # listing and clean-up --------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Manifests of complete entries (without sample ids and checksums), with `bytes` on
        disk and `used` (last read or write, epoch seconds), sorted by model, layer and
        reduction."""
        out = []
        for manifest_path in (self.root / "features").glob("*/manifest.json"):
            try:
                m = json.loads(manifest_path.read_text())
                if not isinstance(m, dict):
                    continue
                m["used"] = manifest_path.stat().st_mtime
                m["bytes"] = _size(manifest_path.parent)
            except (OSError, ValueError):
                continue
            missing = [k for k in _LISTED if k not in m]  # a damaged entry: listed, removable
            m |= {k: _LISTED[k] for k in missing} | {"key": m.get("key", manifest_path.parent.name)}
            if not isinstance(m["fields"], dict):
                m["fields"], missing = {}, missing + ["fields"]
            m["damaged"] = missing
            m.pop("sample_ids", None)
            m.pop("ranges", None)
            m["path"] = str(manifest_path.parent)
            out.append(m)
        return sorted(out, key=lambda e: (str(e["fields"].get("model")),
                                          str(e["fields"].get("layer")),
                                          str(e["fields"].get("reduction")), e["key"]))

    def unfinished(self) -> list[dict[str, Any]]:
        """Unfinished entries (of interrupted or running extractions): fields, finished ranges
        (`parts`), bytes, used."""
        out = []
        for folder in sorted((self.root / "parts").glob("*")):
            try:
                fields = json.loads((folder / "fields.json").read_text())
            except (OSError, ValueError):
                fields = {}
            files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
            parts = 0
            for p in files:
                if p.name.startswith("data-") and p.suffix == ".ranges":
                    with contextlib.suppress(OSError):
                        parts += len(_ranges(p.read_text(), 1 << 62))
            out.append({"key": folder.name, "fields": fields, "path": str(folder),
                        "parts": parts, "bytes": sum(p.stat().st_size for p in files),
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


# What a listed manifest holds (a damaged one gets these placeholders and names what it lacks).
_LISTED: dict[str, Any] = {"fields": {}, "shape": "?", "dtype": "?", "layout": "?"}


def _verified(path: Path, manifest: dict[str, Any], mmap: bool) -> np.ndarray:
    """The entry's array after checking its header and every range's checksum (in memory,
    or memory-mapped read-only); any mismatch is a ValueError."""
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError("another format")
    fd = os.open(path, os.O_RDONLY)
    try:
        shape, dtype, offset = _header(fd)
        if list(shape) != manifest["shape"] or str(dtype) != manifest["dtype"]:
            raise ValueError("header does not match the manifest")
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        if os.fstat(fd).st_size != offset + shape[0] * row_bytes:
            raise ValueError("wrong size")
        header = np.empty(offset, np.uint8)
        _read_rows(fd, 0, header)
        ranges = manifest["ranges"]
        if _digest(header) != manifest["header_crc32"] or [0] + [r[1] for r in ranges] != [
                r[0] for r in ranges] + [shape[0]]:
            raise ValueError("checksums do not cover the array")
        out = None if mmap else np.empty(shape, dtype)
        for start, stop, digest in ranges:
            crc, step = 0, max(1, _BLOCK // max(1, row_bytes))
            for a in range(start, stop, step):
                b = min(stop, a + step)
                block = out[a:b] if out is not None else np.empty((b - a, *shape[1:]), dtype)
                _read_rows(fd, offset + a * row_bytes, block)
                crc = zlib.crc32(memoryview(block).cast("B"), crc)
            if f"{crc:08x}" != digest:
                raise ValueError("checksum mismatch")
    finally:
        os.close(fd)
    return out if out is not None else np.load(path, mmap_mode="r", allow_pickle=False)


def as_cache(cache: bool | FeatureCache | None) -> FeatureCache | None:
    """The default on-disk feature cache for `True`, none for `False`/None, or the cache given."""
    if cache is True:
        return FeatureCache()
    if cache is None or cache is False or isinstance(cache, FeatureCache):
        return cache or None
    raise ZooError(f"cache=: expected True, False or a zoo FeatureCache, got "
                   f"{type(cache).__name__} (for a folder: FeatureCache(path))")
