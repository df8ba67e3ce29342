"""A matrix run as a deterministic plan of idempotent units, kept in a run folder.

Three kinds of unit: `extract` (one model's layers over a sample range), `prepare` (one layer's
metric state over all samples) and `score` (a block of layer pairs). Every process that runs a
share of the plan (`--shard K/N`, torchrun ranks, SLURM array tasks) computes the same unit list
and takes units round-robin within each stage, so each unit has exactly one writer. A unit
writes its files atomically, then its marker `done/<unit>.json`; readers only read marked units,
so they never see partial files, and a killed run resumes by skipping marked units.

    RUN/plan.json                 the configuration (a rerun must match it)
    RUN/units/<unit>/...          prepared metric states and score blocks (.npy and JSON)
    RUN/done/<unit>.json          markers, written last
    RUN/features/...              the feature store, only with cache=False (`--no-cache`)

Features are not kept in the run folder: an extract unit stores its sample range in the same
whole-dataset entries of the feature cache that `zoo extract` and `zoo compare` use (ranges of
one entry, sealed by the unit that completes it; `zoo.features.extraction.extract_range`), and its
marker names the store and the entry keys that prepare units read. A multi-node run therefore
needs a cache all its nodes share (ZOO_CACHE_DIR on the shared filesystem) or `--no-cache`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.engine.allpairs import prepare_one, score_all
from zoo.errors import ZooError
from zoo.features.layers import pair_by_ids
from zoo.io import write_json, write_npy

if TYPE_CHECKING:
    from zoo.data.dataset import Dataset
    from zoo.progress import Progress

FORMAT_VERSION = 1
STAGES = ("extract", "prepare", "score")


@dataclass(frozen=True)
class Unit:
    """One idempotent piece of work: its stage, id, arguments and the units it reads."""

    kind: str
    id: str
    args: dict[str, int] = field(hash=False)
    deps: tuple[str, ...] = ()


@dataclass
class Plan:
    """The run's configuration and its units (derived from the configuration alone)."""

    config: dict[str, Any]
    units: list[Unit]

    @property
    def key(self) -> str:
        """A short hash of the configuration (names the default run folder)."""
        blob = json.dumps(self.config, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def layers(self) -> list[dict[str, Any]]:
        """Every (model, layer) of the matrix in order: model index, name, role, depth."""
        return self.config["layers"]


def make_plan(models: Sequence[tuple[str, Sequence[dict[str, Any]]]], data: dict[str, Any],
              metric: str, *, symmetric: bool, params: dict[str, Any] | None = None,
              reduction: str = "gap", random_init: bool = False,
              weights: dict[str, str] | None = None,
              load_options: dict[str, Any] | None = None, batch_size: int = 16,
              samples_per_unit: int = 1024, layers_per_block: int = 64) -> Plan:
    """Build the plan: `models` are (model id, its layers as {name, role, depth}) in order;
    `data` is {name, fingerprint, n}; `weights` maps model ids to weights files (the others
    load from their caches, or at random with `random_init`); `load_options` (size, crop_pct)
    apply to every model. Symmetric metrics score only blocks on/above the diagonal.
    Sample ranges are whole forward batches (rounded up to a multiple of `batch_size`), so the
    features are bit for bit those of one unsharded extraction.
    """
    if samples_per_unit < 1 or layers_per_block < 1 or batch_size < 1:
        raise ZooError("samples per unit, layers per block and batch size must be >= 1")
    samples_per_unit = -(-samples_per_unit // batch_size) * batch_size
    layers = [{"model": m, "name": info["name"], "role": info["role"],
               "depth": float(info["depth"])} for m, (_, infos) in enumerate(models)
              for info in infos]
    config = {"format": FORMAT_VERSION, "models": [mid for mid, _ in models], "layers": layers,
              "data": dict(data), "metric": metric, "params": dict(params or {}),
              "symmetric": symmetric, "reduction": reduction, "random_init": random_init,
              "weights": dict(weights or {}), "load_options": dict(load_options or {}),
              "batch_size": batch_size, "samples_per_unit": samples_per_unit,
              "layers_per_block": layers_per_block}
    return Plan(config, plan_units(config))


def plan_units(config: dict[str, Any]) -> list[Unit]:
    """The unit list of a configuration, stage by stage, in a fixed order."""
    n, step = config["data"]["n"], config["samples_per_unit"]
    extracts: dict[int, list[str]] = {}
    units = []
    for m in range(len(config["models"])):
        for start in range(0, n, step):
            unit = Unit("extract", f"extract-m{m:03d}-s{start:09d}",
                        {"model": m, "start": start, "stop": min(n, start + step)})
            units.append(unit)
            extracts.setdefault(m, []).append(unit.id)
    for g, layer in enumerate(config["layers"]):
        # every model's first extract too: rows are paired by id to model 0's
        deps = tuple(dict.fromkeys(extracts[layer["model"]] + extracts[0]))
        units.append(Unit("prepare", f"prepare-l{g:05d}", {"layer": g}, deps))
    size, total = config["layers_per_block"], len(config["layers"])
    blocks = list(range(0, total, size))
    for bi, i0 in enumerate(blocks):
        for bj, j0 in enumerate(blocks):
            if config["symmetric"] and bj < bi:
                continue
            rows, cols = range(i0, min(total, i0 + size)), range(j0, min(total, j0 + size))
            deps = tuple(f"prepare-l{g:05d}" for g in dict.fromkeys([*rows, *cols]))
            units.append(Unit("score", f"score-b{bi:04d}-b{bj:04d}",
                              {"i0": i0, "i1": rows.stop, "j0": j0, "j1": cols.stop}, deps))
    return units


# ---- the run folder -------------------------------------------------------------------------
def open_run(run: str | os.PathLike, plan: Plan | None = None) -> Plan:
    """Start or reopen a run folder; a folder holding another plan is refused.

    With `plan=None` the folder must already hold one (merge, workers).
    """
    run = Path(run)
    path = run / "plan.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            units = plan_units(stored)
        except (ValueError, KeyError, TypeError) as exc:
            raise ZooError(f"{path} is corrupt ({type(exc).__name__}); delete the run folder "
                           f"{run} or pass a new --run") from None
        if plan is not None and stored != json.loads(json.dumps(plan.config)):
            changed = sorted(k for k in set(stored) | set(plan.config)
                             if stored.get(k) != json.loads(json.dumps(plan.config.get(k))))
            raise ZooError(f"run folder {run} holds another plan (differs in {', '.join(changed)}"
                           "); pass a new --run folder or delete this one")
        return Plan(stored, units)
    if plan is None:
        raise ZooError(f"{run} is not a matrix run folder (no plan.json); start one with "
                       "`zoo matrix MODELS... --run DIR`")
    write_json(path, plan.config)
    return plan


def is_done(run: Path, unit_id: str) -> bool:
    """Whether `unit_id` has its marker (its outputs are complete)."""
    return (Path(run) / "done" / f"{unit_id}.json").is_file()


def missing_units(plan: Plan, run: str | os.PathLike) -> list[str]:
    """Ids of the units without a marker, in plan order."""
    return [u.id for u in plan.units if not is_done(Path(run), u.id)]


def shard_units(plan: Plan, shard: int, shards: int) -> list[Unit]:
    """This shard's units: round-robin within each stage, so every stage is spread evenly."""
    if not 0 <= shard < shards:
        raise ZooError(f"shard {shard}/{shards}: K must be in 0..N-1")
    mine = []
    for stage in STAGES:
        mine += [u for u in plan.units if u.kind == stage][shard::shards]
    return mine


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ZooError(f"--shard {text!r}: write it as K/N, e.g. 0/4") from None
    if not 0 <= k < n:
        raise ZooError(f"--shard {text!r}: K must be in 0..N-1")
    return k, n


def shard_from_env(env: dict[str, str] | None = None) -> tuple[int, int]:
    """(K, N) from torchrun (RANK, WORLD_SIZE) or a SLURM job array, else (0, 1)."""
    env = dict(os.environ if env is None else env)
    if "RANK" in env and "WORLD_SIZE" in env:
        return parse_shard(f"{env['RANK']}/{env['WORLD_SIZE']}")
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        k = int(env["SLURM_ARRAY_TASK_ID"]) - first
        return parse_shard(f"{k}/{env['SLURM_ARRAY_TASK_COUNT']}")
    return 0, 1


# ---- running units --------------------------------------------------------------------------
def run_shard(plan: Plan, run: str | os.PathLike, shard: int = 0, shards: int = 1, *,
              dataset: Dataset | None = None, device: str = "cpu", wait: float = 0.0,
              stages: Sequence[str] = STAGES, progress: Progress | None = None,
              cache: bool = True) -> list[str]:
    """Run this shard's unfinished units of `stages`; return the ids it computed.

    A unit whose inputs another shard has not finished yet is waited for, up to `wait` seconds
    (polling the markers), then refused with the missing units named. `dataset` is needed only
    by extract units and must be the plan's data (same fingerprint). Extract units read and
    fill the feature cache (unless `cache=False`: then a store in the run folder), so `zoo
    extract`, `zoo compare` and the matrix share one set of entries.
    """
    run = Path(run)
    todo = [u for u in shard_units(plan, shard, shards) if u.kind in stages]
    worker = _Worker(plan, run, dataset, device, cache)
    computed = []
    for k, unit in enumerate(todo):
        if not is_done(run, unit.id):
            _wait_for(run, unit, wait, progress)
            t0 = time.perf_counter()
            worker.run(unit)
            write_json(run / "done" / f"{unit.id}.json", {
                "unit": unit.id, "seconds": time.perf_counter() - t0, "shard": f"{shard}/{shards}",
                "host": socket.gethostname(), "pid": os.getpid(), **worker.note})
            computed.append(unit.id)
        if progress:
            progress("matrix units" if shards == 1 else f"shard {shard}/{shards}", k + 1,
                     len(todo))
    return computed


def _wait_for(run: Path, unit: Unit, wait: float, progress: Progress | None = None) -> None:
    """Poll until `unit`'s inputs are marked done by other shards, saying so through
    `progress`; refuse after `wait` seconds, naming the missing units."""
    deadline = time.monotonic() + wait
    while True:
        missing = [d for d in unit.deps if not is_done(run, d)]
        if not missing:
            return
        if progress:
            progress(f"waiting for other shards ({missing[0]} ...)",
                     len(unit.deps) - len(missing), len(unit.deps))
        if time.monotonic() >= deadline:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                              else "")
            raise ZooError(f"unit {unit.id} needs {shown}, not finished by any shard after "
                           f"{wait:g} s; run the other shards (or raise --wait), then rerun: "
                           "finished units are kept")
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


class _Worker:
    """Executes units; keeps the last loaded model so a shard's extract units share it."""

    def __init__(self, plan: Plan, run: Path, dataset: Dataset | None, device: str,
                 cache: bool = True) -> None:
        self.plan, self.folder, self.dataset, self.device = plan, run, dataset, device
        self.cache = cache
        self.model: Any = None
        self.note: dict[str, Any] = {}
        from zoo.metrics import get

        self.metric = get(plan.config["metric"], **plan.config["params"])

    def run(self, unit: Unit) -> None:
        self.note = {}
        getattr(self, f"_{unit.kind}")(unit, self.folder / "units" / unit.id)

    def _extract(self, unit: Unit, out: Path) -> None:
        from zoo.features.extraction import extract_range
        from zoo.registry.host import get_registry

        cfg, m = self.plan.config, unit.args["model"]
        data = self.dataset
        if data is None or data.fingerprint != cfg["data"]["fingerprint"]:
            raise ZooError(f"unit {unit.id} needs the plan's data {cfg['data']['name']!r} "
                           "(same files, same fingerprint); pass the same --data as the run")
        model_id = cfg["models"][m]
        if self.model is None or self.model.id != model_id:
            self.model = None  # free the previous model first
            weights = cfg.get("weights", {}).get(model_id)
            self.model = get_registry().model(model_id).load(
                weights=weights, random_init=cfg["random_init"] and not weights,
                device=self.device, **cfg.get("load_options", {}))
        layers = [(g, info["name"]) for g, info in enumerate(self.plan.layers)
                  if info["model"] == m]
        store = self.store()
        keys = extract_range(self.model, data, [name for _, name in layers], unit.args["start"],
                             unit.args["stop"], store, cfg["reduction"], cfg["batch_size"])
        self.note = {"weights": self.model.fingerprint, "provenance": self.model.provenance(),
                     "store": str(store.root.resolve()),
                     "keys": {str(g): keys[name] for g, name in layers}}

    def store(self) -> Any:
        """The feature store extract units fill: the shared feature cache (the entries `zoo
        extract` and `zoo compare` use), or with `cache=False` one inside the run folder."""
        from zoo.features.cache import FeatureCache

        return FeatureCache() if self.cache else FeatureCache(self.folder / "features")

    def _prepare(self, unit: Unit, out: Path) -> None:
        g = unit.args["layer"]
        rep, ids = self._rows(g, self.plan.layers[g]["model"])
        _, ref = self._rows(None, 0)
        _, idx = pair_by_ids(ref, ids)
        if not np.array_equal(idx, np.arange(len(ids))):
            rep = rep[idx]
        state, reason = prepare_one(self.metric, rep)
        arrays: dict[str, np.ndarray] = {}
        tree = None if state is None else _encode(state, arrays, self.plan.config["metric"])
        for name, array in arrays.items():
            write_npy(out / f"{name}.npy", array)
        write_json(out / "state.json", {"state": tree, "reason": reason, "n": len(idx)})

    def _rows(self, g: int | None, m: int) -> tuple[np.ndarray | None, list[str]]:
        """Layer g's rows (None: model m's row ids only) from the feature store entry its
        model's extract units filled (named in their markers)."""
        from zoo.features.cache import FeatureCache

        parts = [u for u in self.plan.units if u.kind == "extract" and u.args["model"] == m]
        notes = [json.loads((self.folder / "done" / f"{u.id}.json").read_text()) for u in parts]
        name = self.plan.config["models"][m]
        if len({n.get("weights") for n in notes}) > 1:
            raise ZooError(f"model {name} was extracted with different weights by different "
                           f"shards ({sorted({n.get('weights') for n in notes})}); give every "
                           "node the same weights and start a new run")
        first = next(h for h, info in enumerate(self.plan.layers) if info["model"] == m)
        where = {(n.get("store"), n.get("keys", {}).get(str(first if g is None else g)))
                 for n in notes}
        (root, key), *others = where
        if key is None:
            raise ZooError(f"the extract markers of {name} in {self.folder} name no feature "
                           "store entry (a run folder of an older zoo); start a new run")
        if others:
            raise ZooError(f"the extract units of {name} name different feature store entries "
                           f"({sorted(map(str, where))}); start a new run")
        store = FeatureCache(root)
        if g is None:
            manifest = store.manifest(key)
            entry = None if manifest is None else manifest["sample_ids"]
        else:
            entry = store.get(key, mmap=True)
        if entry is None:
            layer = self.plan.layers[first if g is None else g]["name"]
            raise ZooError(f"feature store entry {key} of {name} ({layer}) is missing or "
                           f"incomplete in {root}: the cache was pruned, or is not shared by "
                           "the nodes of this run (put ZOO_CACHE_DIR on the shared filesystem, "
                           f"or pass --no-cache); delete {self.folder / 'done'}/"
                           f"extract-m{m:03d}-*.json and rerun")
        if g is None:
            return None, list(entry)
        return entry.data, list(entry.sample_ids)

    def _score(self, unit: Unit, out: Path) -> None:
        a = unit.args
        states_a, why_a = self._states(range(a["i0"], a["i1"]))
        same = (a["i0"], a["i1"]) == (a["j0"], a["j1"])
        states_b, why_b = (None, None) if same else self._states(range(a["j0"], a["j1"]))
        values, reasons = score_all(self.metric, states_a, why_a, states_b, why_b,
                                    device=self.device)
        write_npy(out / "values.npy", values)
        write_json(out / "reasons.json", reasons.tolist())

    def _states(self, layers: range) -> tuple[list[Any], list[str]]:
        states, reasons = [], []
        for g in layers:
            state, reason = load_state(self.folder / "units" / f"prepare-l{g:05d}")
            states.append(state)
            reasons.append(reason)
        return states, reasons


# ---- prepared states on disk (arrays as .npy, structure as JSON, never pickle) --------------
def _encode(obj: Any, arrays: dict[str, np.ndarray], metric: str) -> Any:
    """A JSON tree for a metric state; arrays go to `arrays` and are referenced by name."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        name = f"a{len(arrays):04d}"
        arrays[name] = obj
        return {"array": name}
    if isinstance(obj, (list, tuple)):
        return {"list": [_encode(v, arrays, metric) for v in obj]}
    if isinstance(obj, SimpleNamespace) or dataclasses.is_dataclass(obj):
        fields = vars(obj) if isinstance(obj, SimpleNamespace) else {
            f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        name = f"{type(obj).__module__}:{type(obj).__qualname__}"
        if _state_class(name) is not type(obj):
            raise ZooError(f"metric {metric!r}: its state class {name} is not one a run folder "
                           "can rebuild; define it in the metric's own module")
        return {"class": name,
                "fields": {k: _encode(v, arrays, metric) for k, v in fields.items()}}
    raise ZooError(f"metric {metric!r}: its prepared state holds a {type(obj).__name__}, which "
                   "a run folder cannot store without pickle; use `zoo compare` for it, or "
                   "make the state arrays, numbers, lists and namespaces")


def _state_class(name: str) -> type | None:
    """The class a stored state names, if it is on the allowlist: `types.SimpleNamespace`, or a
    namespace or dataclass defined in zoo.metrics, the metric protocol or a registered metric's
    own module, found among the modules already loaded. A module named in a file is never
    imported."""
    import sys

    from zoo.registry.host import get_registry

    module, _, qualname = str(name).partition(":")
    metric_modules = {type(getattr(m, "metric", m)).__module__
                      for m in get_registry().metrics.values()}
    if not (module in ("types", "zoo.metrics", "zoo.registry.protocols")
            or module.startswith("zoo.metrics.")
            or module in metric_modules):
        return None
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        if obj is None or not part.isidentifier() or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and (issubclass(obj, SimpleNamespace)
                                  or dataclasses.is_dataclass(obj)):
        return obj
    return None


def _decode(tree: Any, folder: Path) -> Any:
    """Rebuild a state from its JSON tree: arrays by name, classes only from the allowlist."""
    if not isinstance(tree, dict):
        return tree
    if "array" in tree:
        if not re.fullmatch(r"a\d{4,}", str(tree["array"])):
            raise ZooError(f"{folder}: bad array name {tree['array']!r} in state.json")
        return np.load(folder / f"{tree['array']}.npy", allow_pickle=False)
    if "list" in tree:
        return [_decode(v, folder) for v in tree["list"]]
    cls = _state_class(tree["class"])
    if cls is None:
        raise ZooError(f"{folder}: state class {tree['class']!r} is not allowed (zoo rebuilds "
                       "only namespaces and dataclasses of zoo.metrics and of installed metric "
                       "plugins); this run folder is not from zoo or its metric is not installed")
    return cls(**{str(k): _decode(v, folder) for k, v in tree["fields"].items()})


def load_state(folder: Path) -> tuple[Any, str]:
    """A prepare unit's (state, reason): state None with the reason where it is undefined.
    A corrupt file is a ZooError saying how to recompute the unit."""
    from zoo.errors import one_line

    try:
        stored = json.loads((folder / "state.json").read_text())
        return _decode(stored["state"], folder), str(stored["reason"])
    except ZooError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        marker = folder.parent.parent / "done" / f"{folder.name}.json"
        raise ZooError(f"run file {folder / 'state.json'} is missing or corrupt "
                       f"({one_line(exc)}); delete {marker} and rerun to recompute that unit"
                       ) from None


# ---- the result -----------------------------------------------------------------------------
def assemble(plan: Plan, run: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, reasons, rows) of the whole matrix from the score blocks; refuses a run with
    missing units and names them."""
    run = Path(run)
    missing = missing_units(plan, run)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8
                                          else "")
        raise ZooError(f"run {run} is not finished: {len(missing)} of {len(plan.units)} units "
                       f"missing ({shown}); run the shards that own them (rerun resumes)")
    total = len(plan.layers)
    values = np.full((total, total), np.nan)
    reasons = np.full((total, total), "", dtype=object)
    for unit in plan.units:
        if unit.kind != "score":
            continue
        a, folder = unit.args, run / "units" / unit.id
        block = np.load(folder / "values.npy", allow_pickle=False)
        why = np.array(json.loads((folder / "reasons.json").read_text()), dtype=object)
        rows, cols = slice(a["i0"], a["i1"]), slice(a["j0"], a["j1"])
        values[rows, cols], reasons[rows, cols] = block, why.reshape(block.shape)
        if plan.config["symmetric"]:
            values[cols, rows], reasons[cols, rows] = block.T, why.reshape(block.shape).T
    n = json.loads((run / "units" / "prepare-l00000" / "state.json").read_text())["n"]
    return values, reasons, n
