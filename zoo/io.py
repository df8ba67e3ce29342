"""Atomic writes: a reader sees the old file or the complete new one, never a part; an output
folder appears complete or not at all. Everything written honours the process umask, so a cache
or report on a group server is as shareable as any other file the user creates.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from zoo.errors import ZooError, environment_error

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike | int, directory: bool = False) -> None:
    """Give a file (or file descriptor) made by `tempfile`, which uses 0600/0700, the mode a
    plain open()/mkdir() would have given it."""
    mode = (0o777 if directory else 0o666) & ~current_umask()
    if isinstance(path, int):
        os.fchmod(path, mode)
    else:
        os.chmod(path, mode)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through `write(stream)` to a temporary file beside `path`, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        apply_umask(fd)
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


# Folders (and files) this process reads as its inputs: data folders, runs being merged, the
# feature cache. An output folder replaced with --overwrite must hold none of them.
_INPUTS: dict[Path, str] = {}


def protect_input(path: str | os.PathLike, what: str) -> None:
    """Record `path` as one of this run's inputs (`what`: "data folder", ...): no --overwrite
    may delete it or a folder holding it."""
    with contextlib.suppress(OSError, RuntimeError):
        _INPUTS.setdefault(Path(path).expanduser().resolve(), what)


def _held_input(folder: Path) -> tuple[Path, str] | None:
    """The first input of this run that `folder` is, or holds (the current folder included)."""
    real = folder.resolve()
    inputs = {**_INPUTS, Path.cwd().resolve(): "current folder", Path.home().resolve(): "home"}
    for path, what in inputs.items():
        if path == real or real in path.parents:
            return path, what
    return None


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse, before any work, a folder that holds another run (unless `overwrite`), one
    that --overwrite would delete with the run's own inputs in it (data, the current folder, a
    run being merged), a file, a path under a file, and a place that cannot be written;
    returns the path, user-expanded."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ZooError(f"--out {str(path)!r} is a file; pass a folder")
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise ZooError(f"--out {str(path)!r} already exists and is not empty; pass "
                           "--overwrite to replace it, or choose another folder")
        held = _held_input(p)
        if held:
            raise ZooError(f"--out {str(path)!r} holds {held[0]} ({held[1]} of this run): "
                           "replacing it would delete that; choose another folder")
    base = _existing_ancestor(p.absolute().parent)
    if not base.is_dir():
        raise ZooError(f"--out {str(path)!r}: {base} is a file, not a folder; choose another "
                       "folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ZooError(f"--out {str(path)!r}: cannot write in {base} (permission denied); "
                       "choose a folder you can write to")
    return p


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build an output folder as a unit: yields a temporary sibling to write into, renamed to
    `path` only when the block succeeds (a failure leaves nothing, not even an empty folder).

    An existing non-empty `path` is refused unless `overwrite`, which replaces it whole. Checks
    (a file in the way, an unwritable parent) happen before anything is created.
    """
    final = check_output_folder(path, overwrite).absolute()
    base = _existing_ancestor(final.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=base))
        apply_umask(tmp, directory=True)
    except OSError as exc:
        raise environment_error(exc, f"cannot create --out {str(path)!r}") from None
    try:
        yield tmp
        _commit(tmp, final)
    except OSError as exc:
        raise environment_error(exc, f"cannot write --out {str(path)!r}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _commit(tmp: Path, final: Path) -> None:
    """Move the finished folder into place, replacing what is there (already allowed)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.is_dir() and any(final.iterdir()):
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
    try:
        os.replace(tmp, final)  # onto nothing or an empty folder
    except BaseException:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write JSON (NaN written as null, numpy scalars as numbers)."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Atomically write one array as .npy."""
    return atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """Atomically write dict rows as CSV, columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(to_jsonable(list(rows)))
    return write_text(path, buf.getvalue())


def to_jsonable(obj: Any) -> Any:
    """numpy types -> Python, NaN/inf -> None, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def cache_root() -> Path:
    """Where zoo keeps what it caches (features, checkpoints, file hashes): $ZOO_CACHE_DIR, else
    ~/.cache/zoo."""
    env = os.environ.get("ZOO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"
