"""Generic model families: a plugin that serves any name of a library (`timm/<name>`,
`hf/<org>/<repo>`, ...) registers a `ModelFamily` instead of one `ModelSpec` per name.

The registry asks a family to `resolve` a name it has not registered (the spec is built on
demand, heavy imports allowed there); `search` lists matching names for `zoo list PATTERN`
from an offline index, cheaply (no torch), with whether weights are present locally.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.registry.specs import ModelSpec


@dataclass(frozen=True)
class ModelFamily:
    """A family of models named `<name>/<rest>`: `resolve(rest)` builds the spec (or raises
    UnknownNameError), `search(pattern)` returns listing rows (dicts with `id`, `weights`,
    `description`) whose id matches the glob `pattern` without importing torch."""

    name: str
    resolve: Callable[[str], ModelSpec] = field(repr=False, compare=False)
    search: Callable[[str], list[dict[str, Any]]] = field(repr=False, compare=False)
    description: str = ""
    example: str = ""


def glob_match(names: list[str], pattern: str) -> list[str]:
    """The names matching a glob, case-insensitively (`timm/*vit*` finds `timm/ViT...` too)."""
    pattern = pattern.lower()
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern)]
