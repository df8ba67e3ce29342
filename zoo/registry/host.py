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
import fnmatch
import functools
import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from zoo.errors import UnknownNameError, ZooError, one_line
from zoo.registry import hookspecs
from zoo.registry.protocols import KINDS
from zoo.registry.specs import DatasetSpec, ModelSpec

ENTRY_POINT_GROUP = "zoo"
HOOKS = ("register_models", "register_model_families", "register_metrics", "register_datasets",
         "register_commands")

# Built-ins are ordinary plugins; the host only knows their module names.
BUILTIN_PLUGINS = {
    "datasets": "zoo.plugins.datasets",
    "metrics": "zoo.metrics.builtin",
    "toy": "zoo.plugins.toy",
    "pixels": "zoo.plugins.pixels",
    "unetpp": "zoo.plugins.unetpp",
    "mask2former": "zoo.plugins.mask2former",
    "clip": "zoo.plugins.clip",
    "dinov2": "zoo.plugins.dinov2",
    "mae": "zoo.plugins.mae",
    "resnet-ssl": "zoo.plugins.resnet_ssl",
    "timm": "zoo.plugins.timm_family",  # generic families: any name of the library
    "hf": "zoo.plugins.hf_family",
    "open_clip": "zoo.plugins.open_clip_family",
    "torchvision": "zoo.plugins.torchvision_family",
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
    """While plugin code runs, what it prints goes to stderr (stdout is for zoo's output):
    `print` and `sys.stdout`, and writes to file descriptor 1 itself (os.write, C libraries)."""
    with contextlib.redirect_stdout(sys.stderr), _fd1_to_stderr():
        yield


@contextlib.contextmanager
def _fd1_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr's, then back (nested uses restore in order)."""
    try:
        sys.__stdout__.flush()
        saved = os.dup(1)
    except (AttributeError, OSError, ValueError):  # no fd 1 (embedded, closed): nothing to guard
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.dup2(saved, 1)
        os.close(saved)


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


ZOO_MODEL_ATTRIBUTES = ("id", "layers", "input", "module", "forward_layers", "provenance")


def checked_loader(loader: Callable[..., Any], plugin: str, model: str) -> Callable[..., Any]:
    """A guarded loader (see `guarded`) whose result must be a ZooModel (checked by the
    attributes the pipeline uses, since the boundary sits below the model layer)."""
    load = guarded(loader, plugin, f"loading {model}")

    @functools.wraps(loader)
    def call(*args: Any, **kwargs: Any) -> Any:
        out = load(*args, **kwargs)
        if not all(hasattr(out, a) for a in ZOO_MODEL_ATTRIBUTES):
            raise ZooError(f"plugin {plugin!r}: loading {model} returned {type(out).__name__}, "
                           "not a ZooModel; the loader must return zoo.plugin.wrap_model(...)")
        return out

    return call


def _real_number(value: Any, what: str) -> float:
    """A metric's score as a float: a real number, finite or NaN (undefined); anything else
    (complex, an array, inf, text) is the plugin's error."""
    import numbers

    import numpy as np

    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = (f"an array of shape {value.shape}" if isinstance(value, np.ndarray)
                else f"{type(value).__name__} {value!r}")
        raise ZooError(f"{what} returned {kind}; a score must be one real number "
                       "(NaN with a reason when undefined)")
    if math.isinf(value):
        raise ZooError(f"{what} returned {value}; a score must be finite (raise "
                       "zoo.metrics.MetricUndefined with a reason when it is undefined)")
    return float(value)


def _real_block(value: Any, shape: tuple[int, int], what: str) -> Any:
    """A metric's score_block as a real (A, B) array without inf (NaN marks undefined)."""
    import numpy as np

    block = np.asarray(value) if value is not None else np.empty(0)
    if block.shape != shape:
        raise ZooError(f"{what} returned shape {block.shape}; expected {shape} (one value per "
                       "pair of A's and B's states)")
    if np.iscomplexobj(block) or not (np.issubdtype(block.dtype, np.number)
                                      or block.dtype == bool):
        raise ZooError(f"{what} returned a {block.dtype} array; scores must be real numbers "
                       "(a complex value means the metric's arithmetic went wrong)")
    if np.isinf(block).any():
        raise ZooError(f"{what} returned inf; scores must be finite (NaN marks undefined)")
    return block.astype(np.float64)


METRIC_CALLS = ("prepare", "score", "score_block", "has_block")
METRIC_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class GuardedMetric:
    """A registered metric whose calls are guarded (see `guarded`); every other attribute is
    the metric's own. `.metric` is the object the plugin registered."""

    def __init__(self, metric: Any, plugin: str) -> None:
        self.metric, self.plugin = metric, plugin

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.metric, name)
        if name not in METRIC_CALLS or not callable(value):
            return value
        what = f"metric {self.metric.name!r} {name}"
        call = guarded(value, self.plugin, what)
        what = f"plugin {self.plugin!r}: {what}"
        if name == "score":
            return functools.wraps(value)(lambda *a, **k: _real_number(call(*a, **k), what))
        if name == "score_block":
            @functools.wraps(value)
            def block(states_a: Any, states_b: Any = None, *args: Any, **kwargs: Any) -> Any:
                shape = (len(states_a), len(states_a if states_b is None else states_b))
                return _real_block(call(states_a, states_b, *args, **kwargs), shape, what)

            return block
        return call

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
        self.model_families: dict[str, Any] = {}  # name -> zoo.registry.families.ModelFamily
        self._family_plugins: dict[str, PluginInfo] = {}
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
                continue
            try:  # a misspelled hook (register_model) would otherwise never run, silently
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.pm.unregister(name=name)
                self._fail(info, f"implements no zoo hook: {exc}; the hooks are "
                                 f"{', '.join(HOOKS)}")

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.error = info.error or message
        if _strict():
            raise ZooError(f"plugin {info.name!r} {message} (ZOO_STRICT_PLUGINS is set)")
        print(f"zoo: warning: plugin {info.name!r} {message}", file=sys.stderr)

    def _collect(self) -> None:
        for hook, add in (("register_models", self._add_model),
                          ("register_metrics", self._add_metric),
                          ("register_datasets", self._add_dataset),
                          ("register_model_families", self._add_family)):
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
            spec, loader=checked_loader(spec.loader, info.name, spec.id),
            layers=guarded(spec.layers, info.name, f"layers() of {spec.id}"))
        self._add(self.models, "model", spec.id, spec, info)

    def _add_family(self, info: PluginInfo, family: Any) -> None:
        from zoo.registry.families import ModelFamily

        if not isinstance(family, ModelFamily):
            raise TypeError(f"register_model_families expects ModelFamily, got "
                            f"{type(family).__name__}")
        family = dataclasses.replace(
            family, resolve=guarded(family.resolve, info.name, f"resolving {family.name}/..."),
            search=guarded(family.search, info.name, f"listing {family.name}/..."))
        self._add(self.model_families, "model family", family.name, family, info)
        self._family_plugins[family.name] = info

    def _resolve_generic(self, name: str) -> ModelSpec | None:
        """The spec of `family/rest` from a generic family (built once, then registered)."""
        family, _, rest = name.partition("/")
        if family not in self.model_families or not rest:
            return None
        spec = self.model_families[family].resolve(rest)
        if spec.id not in self.models:
            self._add_model(self._family_plugins[family], spec)
        return self.models[spec.id]

    def _add_metric(self, info: PluginInfo, metric: Any) -> None:
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
        if not isinstance(name, str):
            raise ZooError(f"model: expected a model id such as 'toy/cnn' (see `zoo list`), "
                           f"zoo.load(...) or zoo.wrap(...), got {type(name).__name__}")
        if name in self.models:
            return self.models[name]
        if (generic := self._resolve_generic(name)) is not None:
            return generic
        candidates = self.families.get(name) or [
            s for s in self.models.values() if s.id.startswith(name + ".")]
        if candidates:
            defaults = [s for s in candidates if s.default]
            if not defaults:
                return candidates[0]
            return defaults[-1] if prefer_trained else defaults[0]
        raise UnknownNameError("model", name, list(self.families) + list(self.models),
                               "See `zoo list models`")

    def search(self, pattern: str) -> list[dict[str, Any]]:
        """Listing rows (`id`, `weights`, `description`) for the registered models and every
        generic family's names matching the glob `pattern` (`zoo list PATTERN`)."""
        from zoo.registry.families import glob_match

        rows = [{"id": s.id, "weights": s.weights, "description": s.description}
                for s in self.models.values()
                if glob_match([s.id], pattern) or glob_match([s.family], pattern)]
        for family in self.model_families.values():
            head = pattern.split("/", 1)[0]
            if fnmatch.fnmatchcase(family.name, head) or "/" not in pattern:
                rows += family.search(pattern if "/" in pattern else f"{family.name}/{pattern}")
        return rows

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
