"""Extraction: run a model over a dataset and return (and cache) reduced features per layer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ZooError
from zoo.features.cache import EntryWriter, FeatureCache, cache_key
from zoo.features.layers import LayerFeatures, check_grid, parse_reduction, reduce_array, row_ids
from zoo.progress import Progress

if TYPE_CHECKING:
    import torch

    from zoo.data.dataset import Dataset
    from zoo.model.base import ZooModel
    from zoo.registry.specs import LayerInfo


STORAGE_DTYPES = ("float32", "float16")
PRECISIONS = ("fp32", "bf16", "fp16")
_NDIM = {"NCHW": 4, "NLC": 3, "NQC": 3, "NC": 2}


def feature_fields(model: ZooModel, dataset: Dataset, layer: str, reduction: str,
                   dtype: str, precision: str = "fp32") -> dict:
    """Everything that determines a layer's features: the cache key's content (the layer's
    whole declaration included, so editing a plugin's LayerInfo never serves stale features;
    the forward precision too, so bf16 features never stand in for fp32 ones)."""
    return {"model": model.id, "weights": model.fingerprint, "dataset": dataset.name,
            "data": dataset.fingerprint, "transform": model.input.key(), "layer": layer,
            "declaration": model.layer(layer).as_dict(), "reduction": reduction, "dtype": dtype,
            "precision": precision}


def check_declarations(model: ZooModel, layers: Sequence[str]) -> None:
    """Each layer's declared role is known and its module exists in the network (checked
    before any cache lookup, so a wrong plugin never hides behind cached features)."""
    from zoo.registry.specs import ROLES

    modules = {name for name, _ in model.module.named_modules()}
    for name in layers:
        info = model.layer(name)
        if info.role not in ROLES:
            raise ZooError(f"{model.id}:{name}: role {info.role!r} is not a known role "
                           f"({', '.join(ROLES)}); fix the plugin's LayerInfo")
        if info.module not in modules:
            raise ZooError(f"{model.id}:{name}: module {info.module!r} is not in the "
                           "network; fix the plugin's LayerInfo (see the module names with "
                           "`print(model.module)`)")


def check_shape(model: ZooModel, info: LayerInfo, shape: tuple[int, ...]) -> None:
    """The first batch's channels-last shape matches the declared layout and channels."""
    ndim = _NDIM[info.layout]
    if len(shape) != ndim or shape[-1] != info.channels or (
            info.layout == "NLC" and shape[1] <= info.prefix_tokens):
        raise ZooError(f"{model.id}:{info.name}: declared {info.layout} with "
                       f"{info.channels} channels ({ndim}-d channels-last), but the module "
                       f"yields shape {tuple(shape)}; fix the plugin's LayerInfo (layout, "
                       "channels, prefix_tokens)")


def _check_finite(array: np.ndarray, model: str, layer: str, ids: Sequence[str]) -> None:
    """NaN/inf in a batch's features is an error naming samples (min and max propagate NaN
    and show inf without a full-size temporary; the per-row scan runs only on failure)."""
    if array.size and np.isfinite(array.min()) and np.isfinite(array.max()):
        return
    bad = ~np.isfinite(array.reshape(len(ids), -1)).all(axis=1)  # rows are sample-major
    if bad.any():
        shown = [ids[i] for i in np.flatnonzero(bad)[:3]]
        raise ZooError(f"{model}:{layer} produced NaN/inf features for {int(bad.sum())} "
                       f"samples (e.g. {shown}); check the weights and input normalisation")


def _check_storable(array: np.ndarray, dtype: str, model: str, layer: str) -> None:
    """Features beyond the storage dtype's range are an error, never stored as inf."""
    top = float(np.finfo(dtype).max)
    if not array.size or top >= float(np.finfo(array.dtype).max):
        return  # storing does not narrow the range
    reach = max(-float(array.min()), float(array.max()))  # no full-size temporary
    if reach > top:
        raise ZooError(f"{model} layer {layer}: features reach {reach:.4g}, "
                       f"beyond {dtype}'s range (+-{top:.6g}); store them as float32 "
                       "(--dtype float32)")


def check_arguments(model: Any, dataset: Any, layers: Any, reduction: Any, batch_size: Any,
                    cache: Any) -> None:
    """The types of `extract`'s arguments, each wrong one a ZooError naming what to pass
    (a notebook passes anything; a TypeError deep inside names nothing)."""
    from zoo.data.dataset import Dataset
    from zoo.model.base import ZooModel

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ZooError(message)

    need(isinstance(model, ZooModel), "model: expected a model id, zoo.load(...) or "
         f"zoo.wrap(...), got {type(model).__name__}")
    need(isinstance(dataset, Dataset), "data=: expected a dataset name, an image folder or "
         f"zoo.dataset(...), got {type(dataset).__name__}")
    need(isinstance(layers, (list, tuple)) and all(isinstance(x, str) for x in layers),
         f"layers=: expected names or globs (a string or a list of strings), got {layers!r}")
    need(isinstance(reduction, str), "reduction=: expected gap, cls, grid:K, positions:K, "
         f"flatten or none, got {reduction!r}")
    parse_reduction(reduction)
    need(isinstance(batch_size, int) and not isinstance(batch_size, bool),
         f"batch_size=: expected a whole number of images, got {batch_size!r}")
    need(cache is None or isinstance(cache, FeatureCache), "cache=: expected True, False or "
         f"zoo.features.cache.FeatureCache(folder), got {type(cache).__name__} {cache!r}")


def extract(model: ZooModel, dataset: Dataset, layers: Sequence[str], reduction: str = "none",
            batch_size: int = 16, cache: FeatureCache | None = None,
            progress: Progress | None = None, dtype: str = "float32", workers: int = 0,
            precision: str = "fp32", mmap: bool = False) -> dict[str, LayerFeatures]:
    """Features of `layers` over `dataset`, rows in dataset order, reduced by `reduction`.

    Complete cache entries are reused; missing ones are computed batch by batch straight into
    their final file, each sample range checksummed, so an interrupted extraction resumes
    (with any batch size). `dtype` is the storage precision: "float16" halves the cache (it is
    part of the key; arrays come back as float32 holding the float16 values). `workers`
    processes decode and preprocess images (0: in this process); `precision` runs the forward
    under autocast ("bf16", "fp16"; "fp32" is exact and the default; part of the key). With
    `mmap` and a cache, arrays are read-only memory maps of the entries (memory stays bounded
    by one batch). Weights without a fingerprint are never cached.
    """
    parse_reduction(reduction)
    if batch_size < 1:
        raise ZooError("batch size must be >= 1")
    if dtype not in STORAGE_DTYPES:
        raise ZooError(f"feature dtype {dtype!r}: use one of {', '.join(STORAGE_DTYPES)}")
    if precision not in PRECISIONS:
        raise ZooError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if workers < 0:
        raise ZooError("loader workers must be >= 0 (0: decode in this process)")
    check_declarations(model, layers)
    if cache is not None and not model.fingerprint:
        cache = None
    fields = {n: feature_fields(model, dataset, n, reduction, dtype, precision) for n in layers}
    keys = {n: cache_key(f) for n, f in fields.items()}
    results: dict[str, LayerFeatures] = {}
    if cache is not None:
        stored = [n for n in layers if cache.has(keys[n])]
        ids = row_ids(dataset.ids, reduction) if stored else None
        for name in stored:
            hit = cache.get(keys[name], mmap=mmap, ids=ids)
            if hit is not None:
                hit.meta = dict(fields[name]) | {"cache": "hit"}
                results[name] = _as_float32(hit)
    todo = [n for n in layers if n not in results]
    if todo:
        _Run(model, dataset, reduction, batch_size, cache, keys, fields, progress, workers,
             precision, mmap).fill(todo, results)
    return {n: results[n] for n in layers}


def extract_range(model: ZooModel, dataset: Dataset, layers: Sequence[str], start: int,
                  stop: int, cache: FeatureCache, reduction: str = "gap", batch_size: int = 16,
                  progress: Progress | None = None, dtype: str = "float32",
                  precision: str = "fp32") -> dict[str, str]:
    """Store samples [start, stop) of each layer in the same whole-dataset cache entry that
    `extract` reads and writes (nothing is computed where the entry is complete or the range
    stored); the process that completes an entry seals it. Returns {layer: cache key}."""
    parse_reduction(reduction)
    if not 0 <= start < stop <= len(dataset) or batch_size < 1:
        raise ZooError(f"sample range [{start}, {stop}) of {len(dataset)} samples, batch size "
                       f"{batch_size}: pass 0 <= start < stop <= samples and batch size >= 1")
    if not model.fingerprint:
        raise ZooError(f"{model.id} has no weights fingerprint, so its features cannot be "
                       "keyed in a feature store; load it from a weights file")
    check_declarations(model, layers)
    fields = {n: feature_fields(model, dataset, n, reduction, dtype, precision) for n in layers}
    keys = {n: cache_key(f) for n, f in fields.items()}
    todo = [n for n in layers if not cache.has(keys[n])]
    if todo:
        _Run(model, dataset, reduction, batch_size, cache, keys, fields, progress, 0, precision,
             True).fill_range(todo, start, stop)
    return keys


def _as_float32(feats: LayerFeatures) -> LayerFeatures:
    if feats.data.dtype != np.float32:
        feats.data = feats.data.astype(np.float32)
    return feats


Step = tuple[int, int, list[str]]


def plan_batches(stored: dict[str, dict[int, int]], samples: int, batch_size: int,
                 window: tuple[int, int] | None = None) -> list[Step]:
    """Forward passes (start, stop, layers) that fill every layer's missing sample ranges
    (within `window`, default all samples): at most `batch_size` samples each, never crossing
    a range a layer it serves has stored, and cut where another layer's gap begins so no
    sample is forwarded twice."""
    lo, samples = window or (0, samples)
    # a window starting inside a stored range starts where that range ends
    at = {nm: max([lo] + [e for s, e in st.items() if s < lo < e]) for nm, st in stored.items()}

    def skip(name: str) -> None:
        while at[name] in stored[name]:
            at[name] = stored[name][at[name]]

    for name in at:
        skip(name)
    steps: list[Step] = []
    while at and (start := min(at.values())) < samples:
        here = [nm for nm in at if at[nm] == start]
        later = [s for nm in here for s in stored[nm] if s > start]
        joins = [a for a in at.values() if a > start]  # where a lagging layer can join in
        stop = min([start + batch_size, samples, *later, *joins])
        steps.append((start, stop, here))
        for nm in here:
            at[nm] = stop
            skip(nm)
    return steps


class _Sink:
    """One layer's rows as batches arrive: into an in-memory array, a cache entry's file, or
    both (written once; the in-memory copy is the result, never read back)."""

    def __init__(self, rows: int, rows_per_sample: int, dtype: str,
                 writer: EntryWriter | None, keep: bool) -> None:
        self.rows, self.rps, self.dtype = rows, rows_per_sample, dtype
        self.writer, self.keep = writer, keep
        self.array: np.ndarray | None = None
        self.done: dict[int, int] = {}
        self.written: set[int] = set()

    def stored(self) -> dict[int, int]:
        return self.writer.stored() if self.writer is not None else dict(self.done)

    def write(self, start: int, stop: int, array: np.ndarray) -> None:
        """Samples [start, stop) (any strides; converted to the storage dtype here)."""
        a, b = start * self.rps, stop * self.rps
        if self.keep:
            if self.array is None or self.array.shape[1:] != array.shape[1:]:
                self.array = np.empty((self.rows, *array.shape[1:]), self.dtype)
            self.array[a:b] = array
            array = self.array[a:b]
        if self.writer is not None:
            self.writer.write(start, stop, array)
        self.done[start] = stop
        self.written.add(start)

    def finish(self, layout: str, ids: list[str], prefix: int, cache: FeatureCache | None,
               key: str) -> np.ndarray:
        """The layer's whole array (sealing the cache entry): in memory, or memory-mapped."""
        if self.writer is None:
            return self.array
        if self.keep:  # ranges a dead writer stored (verified) join the in-memory result
            for start, stop in self.writer.stored().items():
                if start not in self.written:
                    if self.array is None:
                        self.array = np.empty((self.rows, *self.writer.row_shape), self.dtype)
                    self.array[start * self.rps:stop * self.rps] = self.writer.read(start, stop)
        self.writer.seal(layout, ids, prefix)
        if self.keep:
            return self.array
        hit = cache.get(key, mmap=True, ids=ids)
        if hit is None:
            raise ZooError(f"the feature cache entry {key} vanished while it was read; rerun")
        return hit.data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Run:
    """One extraction's forward passes, reusing stored ranges wherever they tile the dataset;
    results are written on a background thread while the next batch runs."""

    def __init__(self, model: ZooModel, dataset: Dataset, reduction: str, batch_size: int,
                 cache: FeatureCache | None, keys: dict[str, str], fields: dict[str, dict],
                 progress: Progress | None, workers: int, precision: str, mmap: bool) -> None:
        self.model, self.dataset, self.reduction = model, dataset, reduction
        self.batch_size, self.cache, self.keys, self.fields = batch_size, cache, keys, fields
        self.progress, self.workers, self.precision = progress, workers, precision
        self.keep = cache is None or not mmap
        name, k = parse_reduction(reduction)
        self.rows_per_sample = k * k if name == "positions" else 1
        self.checked: set[str] = set()

    def fill(self, todo: list[str], results: dict[str, LayerFeatures]) -> None:
        """Compute (or complete from stored ranges) every layer in `todo` into `results`."""
        n = len(self.dataset)
        sinks: dict[str, _Sink] = {}
        try:
            for nm in todo:
                writer = None
                if self.cache is not None:
                    writer = self.cache.writer(self.keys[nm], self.fields[nm], n,
                                               self.rows_per_sample, self.fields[nm]["dtype"])
                    writer.verify()
                sinks[nm] = _Sink(n * self.rows_per_sample, self.rows_per_sample,
                                  self.fields[nm]["dtype"], writer, self.keep)
            # a second plan is empty unless a dead writer's file had to be dropped midway
            while steps := plan_batches({nm: s.stored() for nm, s in sinks.items()}, n,
                                        self.batch_size):
                self._run(steps, sinks)
            ids = row_ids(self.dataset.ids, self.reduction)
            for nm in todo:
                info = self.model.layer(nm)
                layout, prefix = ((info.layout, info.prefix_tokens) if self.reduction == "none"
                                  else ("NC", 0))
                data = sinks[nm].finish(layout, ids, prefix, self.cache, self.keys[nm])
                feats = LayerFeatures(data, layout, list(ids), prefix)
                feats.meta = dict(self.fields[nm]) | {
                    "cache": "stored" if self.cache is not None else "off"}
                results[nm] = _as_float32(feats)
        finally:
            for sink in sinks.values():
                sink.close()

    def fill_range(self, todo: list[str], start: int, stop: int) -> None:
        """Store samples [start, stop) of every layer in `todo` (cache only), then seal each
        entry that is complete: writers closed first, then under the entry's seal lock."""
        n = len(self.dataset)
        sinks: dict[str, _Sink] = {}
        try:
            for nm in todo:
                writer = self.cache.writer(self.keys[nm], self.fields[nm], n,
                                           self.rows_per_sample, self.fields[nm]["dtype"])
                writer.verify()
                sinks[nm] = _Sink(n * self.rows_per_sample, self.rows_per_sample,
                                  self.fields[nm]["dtype"], writer, False)
            while steps := plan_batches({nm: s.stored() for nm, s in sinks.items()}, n,
                                        self.batch_size, (start, stop)):
                self._run(steps, sinks)
        finally:
            for sink in sinks.values():
                sink.close()
        ids = row_ids(self.dataset.ids, self.reduction)
        for nm in todo:
            info = self.model.layer(nm)
            layout, prefix = ((info.layout, info.prefix_tokens) if self.reduction == "none"
                              else ("NC", 0))
            with self.cache.sealing(self.keys[nm]):
                if self.cache.has(self.keys[nm]):
                    continue
                writer = self.cache.writer(self.keys[nm], self.fields[nm], n,
                                           self.rows_per_sample, self.fields[nm]["dtype"])
                try:
                    writer.verify()
                    if writer.fd is not None and _covers(writer.stored(), n):
                        writer.seal(layout, ids, prefix)
                finally:
                    writer.close()

    def _run(self, steps: list[Step], sinks: dict[str, _Sink]) -> None:
        """Forward every step; post-process and store each batch while the next one runs."""
        n, total = len(self.dataset), sum(stop - start for start, stop, _ in steps)
        done, task = n - total, f"{self.model.id} on {self.dataset.name}"
        pending: Future | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="zoo-store") as pool:
            try:
                for (start, stop, names), x in zip(steps, self._inputs(steps)):
                    outputs = self._forward(names, x)
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(self._store, sinks, names, start, stop, outputs)
                    done += stop - start
                    if self.progress:
                        self.progress(task, done, n)
                if pending is not None:
                    pending.result()
            except BaseException:
                if pending is not None:
                    with contextlib.suppress(BaseException):
                        pending.result()
                raise

    def _inputs(self, steps: list[Step]) -> Iterator[torch.Tensor]:
        """Preprocessed batches of `steps`, in order: in this process, or from `workers`
        DataLoader processes (pinned memory when the model is on CUDA)."""
        batches = _Preprocess(self.model.preprocess, self.dataset, steps)
        if self.workers == 0:
            items: Any = (batches[i] for i in range(len(steps)))
        else:
            items = self._loader(batches)
        for item in items:
            if isinstance(item, ZooError):
                raise item
            yield item

    def _loader(self, batches: _Preprocess) -> Any:
        """A DataLoader running `batches` in worker processes, in order."""
        import multiprocessing

        from torch.utils.data import DataLoader

        context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        return DataLoader(batches, batch_size=None, shuffle=False, num_workers=self.workers,
                          collate_fn=_unwrap, pin_memory=self.model.device.type == "cuda",
                          multiprocessing_context=context)

    def _forward(self, layers: list[str], x: torch.Tensor) -> dict[str, Any]:
        """One batch through the model: per layer, its reduced features (a host array, or on
        CUDA one transfer for all layers), not yet checked or stored."""
        with _autocast(self.model.device.type, self.precision):
            feats = self.model.forward_layers(x, layers)
        for nm in layers:
            if nm not in self.checked:
                check_shape(self.model, self.model.layer(nm), tuple(feats[nm].shape))
                self.checked.add(nm)
        if feats and next(iter(feats.values())).device.type != "cpu":
            return self._to_host(layers, feats)
        return {nm: feats[nm].float().numpy() for nm in layers}

    def _to_host(self, layers: list[str], feats: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Reduce on the device, then move every layer off it in one copy."""
        import torch

        reduced = [reduce_tensor(feats[nm].float(), self.model.layer(nm), self.reduction,
                                 self.model.id)
                   for nm in layers]
        flat = torch.cat([r.reshape(-1) for r in reduced])
        host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
        host.copy_(flat, non_blocking=True)
        torch.cuda.current_stream(flat.device).synchronize()
        out, at = {}, 0
        for nm, r in zip(layers, reduced):
            out[nm] = _Reduced(host[at:at + r.numel()].numpy().reshape(r.shape))
            at += r.numel()
        return out

    def _store(self, sinks: dict[str, _Sink], layers: list[str], start: int, stop: int,
               outputs: dict[str, Any]) -> None:
        """Reduce (on the host), check and store one batch of every layer in `layers`."""
        ids = self.dataset.ids[start:stop]
        for nm in layers:
            array = outputs[nm]
            if isinstance(array, _Reduced):
                array = array.array
            else:
                info = self.model.layer(nm)
                array, _ = reduce_array(array, info.layout, ids, self.reduction,
                                        info.prefix_tokens)
            _check_finite(array, self.model.id, nm, ids)
            _check_storable(array, sinks[nm].dtype, self.model.id, nm)
            sinks[nm].write(start, stop, array)


def _covers(ranges: dict[int, int], samples: int) -> bool:
    """Whether ranges {start: stop} tile [0, samples) exactly."""
    ordered = sorted(ranges.items())
    return [0] + [e for _, e in ordered] == [s for s, _ in ordered] + [samples]


class _Reduced:
    """Features already reduced on the device (marks them for `_Run._store`)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class _Preprocess:
    """Plan steps -> preprocessed input batches (DataLoader workers inherit it by fork). A
    user error is returned, not raised, so it keeps its one-line message across processes."""

    def __init__(self, preprocess: Callable[[list[Any]], Any], dataset: Dataset,
                 steps: list[Step]) -> None:
        self.preprocess, self.dataset, self.steps = preprocess, dataset, steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> Any:
        start, stop, _ = self.steps[i]
        try:
            return self.preprocess([self.dataset.image(j) for j in range(start, stop)])
        except ZooError as exc:
            return exc


def _unwrap(item: Any) -> Any:
    return item


def _autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for "bf16"/"fp16" on the model's device; nothing for exact "fp32"."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type, dtype=dtype)


def reduce_tensor(t: torch.Tensor, info: LayerInfo, reduction: str,
                  model: str = "") -> torch.Tensor:
    """`reduce_array` on a channels-last tensor where it lives (the device), contiguous: the
    same reductions and row order, float32 sums in the device's order."""
    import torch.nn.functional as F

    name, k = parse_reduction(reduction)
    layout, n = info.layout, t.shape[0]
    if name == "none" or (layout == "NC" and name in ("gap", "cls")):
        return t.contiguous()
    if name == "flatten":
        return t.reshape(n, -1)
    if name == "cls":
        if layout != "NLC" or info.prefix_tokens < 1:
            raise ZooError(f"reduction 'cls' needs a token layer with a class token (got "
                           f"{layout} with {info.prefix_tokens} prefix tokens); use 'gap'")
        return t[:, 0].contiguous()
    if name == "gap":
        if layout == "NLC":
            return t[:, info.prefix_tokens:].mean(dim=1)
        return t.reshape(n, -1, t.shape[-1]).mean(dim=1)
    if layout not in ("NCHW", "NLC"):
        raise ZooError(f"reduction {reduction!r} needs a spatial layer, got {layout}; use 'gap'")
    maps = t
    if layout == "NLC":
        patches = t[:, info.prefix_tokens:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ZooError(f"{model}:{info.name}: {patches.shape[1]} tokens after "
                           f"{info.prefix_tokens} prefix tokens do not form a square grid; "
                           f"declare the layer's prefix tokens, or use --reduce gap")
        maps = patches.reshape(n, side, side, t.shape[-1])
    check_grid(reduction, k, maps.shape[1], maps.shape[2])
    pooled = F.adaptive_avg_pool2d(maps.permute(0, 3, 1, 2).double(), k).permute(0, 2, 3, 1)
    pooled = pooled.to(t.dtype)
    return pooled.reshape(n, -1) if name == "grid" else pooled.reshape(n * k * k, -1)
