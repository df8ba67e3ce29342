"""The plugin host: loads built-in and entry-point plugins and collects what they register.

Each plugin loads and registers inside its own try/except, so one broken plugin is reported
(`zoo plugins`, stderr) and never stops the others, unless ZOO_STRICT_PLUGINS=1.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import UnknownNameError, ZooError
from zoo.specs import DatasetSpec, ModelSpec

ENTRY_POINT_GROUP = "zoo"

# Built-ins are ordinary plugins; the host only knows their module names.
BUILTIN_PLUGINS = {
    "datasets": "zoo.data",
    "metrics": "zoo.metrics.builtin",
    "commands": "zoo.cli.commands",
    "toy": "zoo.plugins.toy",
    "unetpp": "zoo.plugins.unetpp",
    "mask2former": "zoo.plugins.mask2former",
    "clip": "zoo.plugins.clip",
    "dinov2": "zoo.plugins.dinov2",
    "mae": "zoo.plugins.mae",
    "resnet-ssl": "zoo.plugins.resnet_ssl",
    "trained": "zoo.plugins.trained",  # after the families: a trained default wins
}


@dataclass
class PluginInfo:
    """One plugin as `zoo plugins` shows it."""

    name: str
    source: str  # "builtin" or the distribution that provides the entry point
    module: str
    error: str = ""
    registered: list[str] = field(default_factory=list)


def _strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0", "false")


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("ZOO_DISABLE_PLUGINS", "").split(",") if n.strip()}


class Registry:
    """Models, metrics and datasets registered by all loaded plugins, with lookups."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.models: dict[str, ModelSpec] = {}
        self.metrics: dict[str, Any] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self._load()
        self._collect()

    # loading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        disabled = _disabled()
        candidates = [(n, "builtin", m, None) for n, m in BUILTIN_PLUGINS.items()]
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            candidates.append((ep.name, dist.name if dist else "entry point", ep.value, ep))
        for name, source, module, ep in candidates:
            if name in disabled:
                continue
            info = PluginInfo(name, source, module)
            self.plugins.append(info)
            try:
                obj = ep.load() if ep is not None else importlib.import_module(module)
                self.pm.register(obj, name=name)
            except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, not fatal
                self._fail(info, f"failed to load: {type(exc).__name__}: {exc}")

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.error = info.error or message
        if _strict():
            raise ZooError(f"plugin {info.name!r} {message} (ZOO_STRICT_PLUGINS is set)")
        print(f"zoo: warning: plugin {info.name!r} {message}", file=sys.stderr)

    def _collect(self) -> None:
        for hook, add in (("register_models", self._add_model),
                          ("register_metrics", self._add_metric),
                          ("register_datasets", self._add_dataset)):
            self._call(hook, lambda info, add=add: {"register": functools.partial(add, info)})

    def add_commands(self, app: Any) -> None:
        """Let every plugin add its commands to the Typer `app`."""
        self._call("register_commands", lambda info: {"app": app})

    def _call(self, hook: str, kwargs_for: Callable[[PluginInfo], dict[str, Any]]) -> None:
        """Call one hook plugin by plugin, so a failure is pinned on the plugin that raised."""
        infos = {p.name: p for p in self.plugins}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():  # registration order
            info = infos[impl.plugin_name]
            try:
                impl.function(**kwargs_for(info))
            except Exception as exc:  # noqa: BLE001
                self._fail(info, f"raised in {hook}: {type(exc).__name__}: {exc}")

    def _add(self, table: dict, kind: str, key: str, obj: Any, info: PluginInfo) -> None:
        if key in table:
            raise ZooError(f"{kind} {key!r} is already registered")
        table[key] = obj
        info.registered.append(f"{kind}:{key}")

    def _add_model(self, info: PluginInfo, spec: ModelSpec) -> None:
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"register_models expects ModelSpec, got {type(spec).__name__}")
        self._add(self.models, "model", spec.id, spec, info)

    def _add_metric(self, info: PluginInfo, metric: Any) -> None:
        for attr in ("name", "prepare", "score"):
            if not hasattr(metric, attr):
                raise TypeError(f"register_metrics: {metric!r} has no {attr!r}")
        self._add(self.metrics, "metric", metric.name, metric, info)

    def _add_dataset(self, info: PluginInfo, spec: DatasetSpec) -> None:
        if not isinstance(spec, DatasetSpec):
            raise TypeError(f"register_datasets expects DatasetSpec, got {type(spec).__name__}")
        self._add(self.datasets, "dataset", spec.name, spec, info)

    # lookups ---------------------------------------------------------------------------------
    @property
    def families(self) -> dict[str, list[ModelSpec]]:
        out: dict[str, list[ModelSpec]] = {}
        for spec in self.models.values():
            out.setdefault(spec.family, []).append(spec)
        return out

    def model(self, name: str, prefer_trained: bool = True) -> ModelSpec:
        """Resolve `family/arch.tag`, `family/arch` (its default or first tag) or a bare family.

        Among several specs marked default, the last registered wins: that is a checkpoint the
        project trained itself (plugin `trained`, loaded after the families). With
        `prefer_trained=False` (the user passes weights or asks for random init) the first, the
        family's own default, is used.
        """
        if name in self.models:
            return self.models[name]
        candidates = self.families.get(name) or [
            s for s in self.models.values() if s.id.startswith(name + ".")]
        if candidates:
            defaults = [s for s in candidates if s.default]
            if not defaults:
                return candidates[0]
            return defaults[-1] if prefer_trained else defaults[0]
        raise UnknownNameError("model", name, list(self.families) + list(self.models),
                               "See `zoo list models`")

    def metric(self, name: str) -> Any:
        if name not in self.metrics:
            raise UnknownNameError("metric", name, self.metrics, "See `zoo list metrics`")
        return self.metrics[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise UnknownNameError("dataset", name, self.datasets, "See `zoo list datasets`")
        return self.datasets[name]


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    return Registry()


def reset_registry() -> None:
    """Forget the loaded registry (tests, or after installing a plugin at run time)."""
    get_registry.cache_clear()
