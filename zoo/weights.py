"""Reading local weight files and fingerprinting them for cache keys (never the network)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from zoo.errors import WeightsError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".pth.tar")
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def fingerprint_file(path: str | os.PathLike) -> str:
    """sha256 (first 16 hex) of a weights file or of every file in a weights folder."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _FINGERPRINTS:
            fh = hashlib.sha256()
            with open(f, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 22), b""):
                    fh.update(chunk)
            _FINGERPRINTS[key] = fh.hexdigest()
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(_FINGERPRINTS[key].encode())
    return h.hexdigest()[:16]


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file (.pth/.pt/.bin/.ckpt with torch's safe loader, or .safetensors)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(p)))
        import torch

        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unusable file
        raise WeightsError(f"cannot read weights {path}: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
