"""The plugin boundary: five hooks, each handed a `register` callback (or the Typer app).

Plugins implement any of them with `@zoo.hookimpl`; built-ins are ordinary plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from zoo.registry.families import ModelFamily
    from zoo.registry.specs import DatasetSpec, ModelSpec

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Call `register(spec)` once per `ModelSpec` the plugin provides; keep it cheap (no torch)."""


@hookspec
def register_model_families(register: Callable[[ModelFamily], None]) -> None:
    """Call `register(family)` once per `zoo.registry.families.ModelFamily` (any name of a
    library, resolved on demand: `timm/<name>`); keep it cheap (no torch)."""


@hookspec
def register_metrics(register: Callable[[Any], None]) -> None:
    """Call `register(metric)` once per `zoo.metrics.Metric` the plugin provides."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Call `register(spec)` once per `DatasetSpec` (image source) the plugin provides."""


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands or command groups to the `zoo` Typer app, with the public Typer API only."""
