"""The plugin host: loads built-in and entry-point plugins and collects what they register.

Plugins are isolated at every call, not only at import: each plugin loads and registers inside
its own guard (exceptions and `SystemExit` are caught, anything it prints goes to stderr so
`--json` output stays clean), so one broken plugin is reported (`zoo plugins`, stderr) and never
stops the others, unless ZOO_STRICT_PLUGINS=1. What a plugin registers is guarded too: a model's
loader and `layers()`, and a metric's calls, that raise end as one `ZooError` naming the plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import UnknownNameError, ZooError, one_line
from zoo.specs import DatasetSpec, ModelSpec

ENTRY_POINT_GROUP = "zoo"

# Built-ins are ordinary plugins; the host only knows their module names.
BUILTIN_PLUGINS = {
    "datasets": "zoo.data",
    "metrics": "zoo.metrics.builtin",
    "commands": "zoo.cli.commands",
    "toy": "zoo.plugins.toy",
    "pixels": "zoo.plugins.pixels",
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


@contextlib.contextmanager
def plugin_code() -> Iterator[None]:
    """While plugin code runs, what it prints goes to stderr (stdout is for zoo's output)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def guarded(fn: Callable[..., Any], plugin: str, what: str) -> Callable[..., Any]:
    """`fn` with its failures (exceptions, SystemExit) turned into one ZooError naming the
    plugin; zoo's own errors (missing weights, undefined metric) pass through unchanged."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            with plugin_code():
                return fn(*args, **kwargs)
        except ZooError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin bug, pinned on it
            raise ZooError(f"plugin {plugin!r}: {what} failed: {one_line(exc)}") from exc

    return call


METRIC_CALLS = ("prepare", "score", "score_block", "has_block")
METRIC_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class GuardedMetric:
    """A registered metric whose calls are guarded (see `guarded`); every other attribute is
    the metric's own. `.metric` is the object the plugin registered."""

    def __init__(self, metric: Any, plugin: str) -> None:
        self.metric, self.plugin = metric, plugin

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.metric, name)
        if name in METRIC_CALLS and callable(value):
            return guarded(value, self.plugin, f"metric {self.metric.name!r} {name}")
        return value

    def __repr__(self) -> str:
        return f"GuardedMetric({self.metric!r}, plugin={self.plugin!r})"


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
                with plugin_code():
                    obj = ep.load() if ep is not None else importlib.import_module(module)
                self.pm.register(obj, name=name)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, not fatal
                self._fail(info, f"failed to load: {one_line(exc)}")

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
        """Call one hook plugin by plugin, so a failure is pinned on the plugin that raised.

        Each implementation gets only the arguments it declares (pluggy's rule), so a hook
        can gain arguments later without breaking existing plugins.
        """
        infos = {p.name: p for p in self.plugins}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():  # registration order
            info = infos[impl.plugin_name]
            kwargs = kwargs_for(info)
            try:
                with plugin_code():
                    impl.function(**{k: kwargs[k] for k in impl.argnames})
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                self._fail(info, f"raised in {hook}: {one_line(exc)}")

    def _add(self, table: dict, kind: str, key: str, obj: Any, info: PluginInfo) -> None:
        if key in table:
            raise ZooError(f"{kind} {key!r} is already registered")
        table[key] = obj
        info.registered.append(f"{kind}:{key}")

    def _add_model(self, info: PluginInfo, spec: ModelSpec) -> None:
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"register_models expects ModelSpec, got {type(spec).__name__}")
        spec = dataclasses.replace(
            spec, loader=guarded(spec.loader, info.name, f"loading {spec.id}"),
            layers=guarded(spec.layers, info.name, f"layers() of {spec.id}"))
        self._add(self.models, "model", spec.id, spec, info)

    def _add_metric(self, info: PluginInfo, metric: Any) -> None:
        from zoo.metrics.base import KINDS

        missing = [a for a in ("name", "kind", "prepare", "score") if not hasattr(metric, a)]
        if missing:
            raise TypeError(f"metric {metric!r} lacks {', '.join(missing)} (a metric needs "
                            "name, kind, prepare(X) and score(a, b))")
        name = metric.name
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            raise TypeError(f"metric name {name!r} must be kebab-case (e.g. 'mean-gap')")
        if metric.kind not in KINDS:
            raise TypeError(f"metric {name!r}: kind {metric.kind!r} must be one of "
                            f"{', '.join(KINDS)}")
        not_callable = [a for a in ("prepare", "score") if not callable(getattr(metric, a))]
        if not_callable:
            raise TypeError(f"metric {name!r}: {', '.join(not_callable)} must be callable")
        self._add(self.metrics, "metric", name, GuardedMetric(metric, info.name), info)

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
