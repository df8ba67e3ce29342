"""Extraction: run a model over a dataset and return (and cache) reduced features per layer."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from zoo.cache import FeatureCache, cache_key
from zoo.errors import UnknownNameError, ZooError
from zoo.features import LayerFeatures, parse_reduction, reduce_array, row_ids

if TYPE_CHECKING:
    from zoo.data import Dataset
    from zoo.model import ZooModel

Progress = Callable[[str, int, int], None]


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


def feature_fields(model: ZooModel, dataset: Dataset, layer: str, reduction: str,
                   dtype: str) -> dict:
    """Everything that determines a layer's features: the cache key's content."""
    return {"model": model.id, "weights": model.fingerprint, "dataset": dataset.name,
            "data": dataset.fingerprint, "transform": model.input.key(), "layer": layer,
            "reduction": reduction, "dtype": dtype}


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
    stored as a part, so an interrupted extraction resumes. Weights without a fingerprint are
    never cached.
    """
    parse_reduction(reduction)
    if batch_size < 1:
        raise ZooError("batch size must be >= 1")
    infos = {name: model.layer(name) for name in layers}
    if cache is not None and not model.fingerprint:
        cache = None
    fields = {n: feature_fields(model, dataset, n, reduction, dtype) for n in layers}
    keys = {n: cache_key(f) for n, f in fields.items()}
    results: dict[str, LayerFeatures] = {}
    if cache is not None:
        for name in layers:
            hit = cache.get(keys[name])
            if hit is not None:
                results[name] = hit
    todo = [n for n in layers if n not in results]
    if todo:
        _compute(model, dataset, todo, infos, reduction, batch_size, cache, keys, fields,
                 progress, dtype, results)
    return {n: results[n] for n in layers}


def _compute(model, dataset, todo, infos, reduction, batch_size, cache, keys, fields, progress,
             dtype, results) -> None:
    """Run the forward passes for the layers in `todo` and fill `results`."""
    n = len(dataset)
    starts = list(range(0, n, batch_size))
    done = {name: (cache.done_parts(keys[name]) if cache else set()) for name in todo}
    parts: dict[str, list[np.ndarray | None]] = {name: [None] * len(starts) for name in todo}
    task = f"{model.id} on {dataset.name}"
    for b, start in enumerate(starts):
        ids = dataset.ids[start:start + batch_size]
        need = [nm for nm in todo if b not in done[nm]]
        for nm in todo:
            if b in done[nm]:
                parts[nm][b] = cache.read_part(keys[nm], b)
                if parts[nm][b] is None:
                    need.append(nm)
        if need:
            x = model.preprocess([dataset.image(i) for i in range(start, start + len(ids))])
            feats = model.forward_layers(x, need)
            for nm in need:
                array = feats[nm].float().cpu().numpy()
                _check_finite(array, model.id, nm, ids)
                reduced, _ = reduce_array(array, infos[nm].layout, ids, reduction,
                                          infos[nm].prefix_tokens)
                parts[nm][b] = np.ascontiguousarray(reduced, dtype=dtype)
                if cache is not None:
                    cache.put_part(keys[nm], b, parts[nm][b])
        if progress:
            progress(task, min(start + batch_size, n), n)
    for nm in todo:
        info = infos[nm]
        data = np.concatenate(parts[nm])
        if reduction == "none":
            feats = LayerFeatures(data, info.layout, list(dataset.ids), info.prefix_tokens)
        else:
            feats = LayerFeatures(data, "NC", row_ids(dataset.ids, reduction))
        feats.meta = dict(fields[nm])
        if cache is not None:
            cache.put(keys[nm], feats, fields[nm])
        results[nm] = feats
