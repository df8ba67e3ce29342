"""Default output folders: one per run, never an earlier run's folder.

`runs/<kind>-<names>-<hash of the options>`; if that exists (the same options again), a
timestamp is added, so no run overwrites another unless the user passes its folder and asks.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path("runs")


def slug(text: str) -> str:
    """A model id or label as a safe file-name part (`unetpp/resnet34` -> `unetpp-resnet34`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def default_folder(kind: str, names: Sequence[str], options: dict[str, Any]) -> Path:
    """A new folder name for a run of `kind` over `names` with these options."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    base = ROOT / f"{kind}-{slug('-'.join(names))[:80]}-{digest.hexdigest()[:8]}"
    if not base.exists():
        return base
    return base.with_name(f"{base.name}-{time.strftime('%Y%m%d-%H%M%S')}")

