"""Extraction: run a model over a dataset and return (and cache) reduced features per layer."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from zoo.cache import FeatureCache, cache_key
from zoo.errors import UnknownNameError, ZooError
from zoo.features import LayerFeatures, parse_reduction, reduce_array, row_ids
from zoo.progress import Progress

if TYPE_CHECKING:
    from zoo.data import Dataset
    from zoo.model import ZooModel
    from zoo.specs import LayerInfo



def select_layers(available: Sequence[str], patterns: Sequence[str] | None, model: str) -> list[str]:
    """Expand layer names and glob patterns (`block*`) in model order; None means all layers."""
    if not patterns:
        return list(available)
    chosen: list[str] = []
    for pattern in patterns:
        hits = layer_matches(available, pattern)
        if not hits:
            raise UnknownNameError(f"layer of {model}", pattern, available,
                                   f"See `zoo info {model}`")
        chosen += [h for h in hits if h not in chosen]
    return [n for n in available if n in chosen]


def layer_matches(available: Sequence[str], pattern: str) -> list[str]:
    """The layer names that `pattern` (a name or a glob) selects."""
    return [n for n in available if fnmatch.fnmatchcase(n, pattern)]


STORAGE_DTYPES = ("float32", "float16")
_NDIM = {"NCHW": 4, "NLC": 3, "NQC": 3, "NC": 2}


def feature_fields(model: ZooModel, dataset: Dataset, layer: str, reduction: str,
                   dtype: str) -> dict:
    """Everything that determines a layer's features: the cache key's content (the layer's
    whole declaration included, so editing a plugin's LayerInfo never serves stale features)."""
    return {"model": model.id, "weights": model.fingerprint, "dataset": dataset.name,
            "data": dataset.fingerprint, "transform": model.input.key(), "layer": layer,
            "declaration": model.layer(layer).as_dict(), "reduction": reduction, "dtype": dtype}


def check_declarations(model: ZooModel, layers: Sequence[str]) -> None:
    """Each layer's declared role is known and its module exists in the network (checked
    before any cache lookup, so a wrong plugin never hides behind cached features)."""
    from zoo.specs import ROLES

    modules = {name for name, _ in model.module.named_modules()}
    for name in layers:
        info = model.layer(name)
        if info.role not in ROLES:
            raise ZooError(f"{model.id} layer {name}: role {info.role!r} is not a known role "
                           f"({', '.join(ROLES)}); fix the plugin's LayerInfo")
        if info.module not in modules:
            raise ZooError(f"{model.id} layer {name}: module {info.module!r} is not in the "
                           "network; fix the plugin's LayerInfo (see the module names with "
                           "`print(model.module)`)")


def check_shape(model: ZooModel, info: LayerInfo, shape: tuple[int, ...]) -> None:
    """The first batch's channels-last shape matches the declared layout and channels."""
    ndim = _NDIM[info.layout]
    if len(shape) != ndim or shape[-1] != info.channels or (
            info.layout == "NLC" and shape[1] <= info.prefix_tokens):
        raise ZooError(f"{model.id} layer {info.name}: declared {info.layout} with "
                       f"{info.channels} channels ({ndim}-d channels-last), but the module "
                       f"yields shape {tuple(shape)}; fix the plugin's LayerInfo (layout, "
                       "channels, prefix_tokens)")


def _check_finite(array: np.ndarray, model: str, layer: str, ids: Sequence[str]) -> None:
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        shown = [ids[i] for i in np.flatnonzero(bad)[:3]]
        raise ZooError(f"{model} layer {layer} produced NaN/inf features for {int(bad.sum())} "
                       f"samples (e.g. {shown}); check the weights and input normalisation")


def extract(model: ZooModel, dataset: Dataset, layers: Sequence[str], reduction: str = "none",
            batch_size: int = 16, cache: FeatureCache | None = None,
            progress: Progress | None = None, dtype: str = "float32") -> dict[str, LayerFeatures]:
    """Features of `layers` over `dataset`, rows in dataset order, reduced by `reduction`.

    Complete cache entries are reused; missing ones are computed batch by batch, each batch
    stored as a checksummed part keyed by its sample range, so an interrupted extraction
    resumes (with any batch size). `dtype` is the storage precision: "float16" halves the
    cache (it is part of the key; arrays come back as float32 holding the float16 values).
    Weights without a fingerprint are never cached.
    """
    parse_reduction(reduction)
    if batch_size < 1:
        raise ZooError("batch size must be >= 1")
    if dtype not in STORAGE_DTYPES:
        raise ZooError(f"feature dtype {dtype!r}: use one of {', '.join(STORAGE_DTYPES)}")
    check_declarations(model, layers)
    if cache is not None and not model.fingerprint:
        cache = None
    fields = {n: feature_fields(model, dataset, n, reduction, dtype) for n in layers}
    keys = {n: cache_key(f) for n, f in fields.items()}
    results: dict[str, LayerFeatures] = {}
    if cache is not None:
        for name in layers:
            hit = cache.get(keys[name])
            if hit is not None:
                hit.meta = dict(fields[name])
                results[name] = _as_float32(hit)
    todo = [n for n in layers if n not in results]
    if todo:
        _Run(model, dataset, reduction, batch_size, cache, keys, fields, progress).fill(
            todo, results)
    return {n: results[n] for n in layers}


def _as_float32(feats: LayerFeatures) -> LayerFeatures:
    if feats.data.dtype != np.float32:
        feats.data = feats.data.astype(np.float32)
    return feats


class _Run:
    """One extraction's forward passes, reusing stored parts wherever they tile the dataset."""

    def __init__(self, model, dataset, reduction, batch_size, cache, keys, fields,
                 progress) -> None:
        self.model, self.dataset, self.reduction = model, dataset, reduction
        self.batch_size, self.cache, self.keys, self.fields = batch_size, cache, keys, fields
        self.progress = progress
        name, k = parse_reduction(reduction)
        self.rows_per_sample = k * k if name == "positions" else 1
        self.checked: set[str] = set()

    def fill(self, todo: list[str], results: dict[str, LayerFeatures]) -> None:
        """Compute (or assemble from parts) every layer in `todo` into `results`."""
        chunks = self._chunks(todo)
        for name in todo:
            try:
                data = np.concatenate(chunks[name])
            except ValueError:  # parts that do not assemble: forget them, compute afresh
                if self.cache is None:
                    raise
                self.cache.drop_parts(self.keys[name])
                data = np.concatenate(self._chunks([name])[name])
            info = self.model.layer(name)
            if self.reduction == "none":
                feats = LayerFeatures(data, info.layout, list(self.dataset.ids),
                                      info.prefix_tokens)
            else:
                feats = LayerFeatures(data, "NC", row_ids(self.dataset.ids, self.reduction))
            feats.meta = dict(self.fields[name])
            if self.cache is not None:
                self.cache.put(self.keys[name], feats, self.fields[name])
            results[name] = _as_float32(feats)

    def _chunks(self, todo: list[str]) -> dict[str, list[np.ndarray]]:
        """Each layer's arrays over consecutive sample ranges covering the dataset."""
        n = len(self.dataset)
        stored = {nm: self.cache.parts(self.keys[nm]) if self.cache else {} for nm in todo}
        at = dict.fromkeys(todo, 0)
        chunks: dict[str, list[np.ndarray]] = {nm: [] for nm in todo}
        task = f"{self.model.id} on {self.dataset.name}"
        while (start := min(at.values())) < n:
            here = [nm for nm in todo if at[nm] == start]
            need = []
            for nm in here:
                stop, path = stored[nm].pop(start, (0, None))
                array = (self.cache.read_part(path, (stop - start) * self.rows_per_sample)
                         if path is not None and stop <= n else None)
                if array is None:
                    need.append(nm)
                else:
                    chunks[nm].append(array)
                    at[nm] = stop
            if need:
                later = [s for nm in need for s in stored[nm] if s > start]
                stop = min([start + self.batch_size, n, *later])
                for nm, array in self._forward(need, start, stop).items():
                    chunks[nm].append(array)
                    at[nm] = stop
                    if self.cache is not None:
                        self.cache.put_part(self.keys[nm], start, stop, array, self.fields[nm])
            if self.progress:
                self.progress(task, min(at.values()), n)
        return chunks

    def _forward(self, layers: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        """Samples [start, stop) through the model: reduced arrays in the storage dtype."""
        ids = self.dataset.ids[start:stop]
        x = self.model.preprocess([self.dataset.image(i) for i in range(start, stop)])
        feats = self.model.forward_layers(x, layers)
        out = {}
        for nm in layers:
            info = self.model.layer(nm)
            if nm not in self.checked:
                check_shape(self.model, info, tuple(feats[nm].shape))
                self.checked.add(nm)
            array = feats[nm].float().cpu().numpy()
            _check_finite(array, self.model.id, nm, ids)
            reduced, _ = reduce_array(array, info.layout, ids, self.reduction,
                                      info.prefix_tokens)
            out[nm] = np.ascontiguousarray(reduced, dtype=self.fields[nm]["dtype"])
        return out
