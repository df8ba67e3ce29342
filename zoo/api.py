"""The notebook API, re-exported as `zoo.<name>`: find and load models (or wrap your own
`nn.Module`), open data, extract labelled features, compare two models, run the zoo matrix.

    import zoo
    a = zoo.extract(zoo.load("toy/cnn", random_init=True), "samples", layers="stage*")
    b = zoo.extract(zoo.load("toy/vit", random_init=True), "samples")
    result = zoo.compare(a, b, metrics="cka,svcca")
    result.table(); result.heatmap("cka"); result.save("runs/mine")

Everything heavy (torch, the model libraries) is imported inside the functions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import nn

    from zoo.cache import FeatureCache
    from zoo.comparison import Comparison
    from zoo.data import Dataset
    from zoo.featureset import FeatureSet
    from zoo.matrix_run import MatrixResult
    from zoo.model import ZooModel
    from zoo.progress import Progress
    from zoo.specs import InputConfig, ModelSpec
    from zoo.validation import Validation

def list_models(pattern: str = "*") -> list[ModelSpec]:
    """Registered models whose id (`family/arch.tag`) matches the glob `pattern`."""
    from zoo.registry import get_registry

    return [s for s in get_registry().models.values()
            if fnmatch.fnmatchcase(s.id, pattern) or fnmatch.fnmatchcase(s.family, pattern)]


def check_device(device: str) -> str:
    """`device` if usable here (cpu, cuda, cuda:N); a clear error with the way out otherwise."""
    if device == "cpu":
        return device
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ZooError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise ZooError(f"device {device}: CUDA is not available here; use cpu")
    if ":" in device and int(device[5:]) >= torch.cuda.device_count():
        raise ZooError(f"device {device}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def load(model: str | ModelSpec, *, weights: str | None = None, random_init: bool = False,
         device: str = "cpu", **options: Any) -> ZooModel:
    """Load a registered model (`family`, `family/arch` or `family/arch.tag`) with its real
    weights (`weights` path, else the local caches) or, when asked, fixed-seed random weights."""
    from zoo.registry import get_registry

    if weights and random_init:
        raise ZooError("weights and random init exclude each other; pass one")
    if weights and not Path(weights).expanduser().exists():
        raise ZooError(f"weights {weights!r} do not exist; pass an existing file or folder")
    spec = model if not isinstance(model, str) else get_registry().model(
        model, prefer_trained=not (weights or random_init))
    return spec.load(weights=weights, random_init=random_init, device=check_device(device),
                     **options)


def wrap(module: nn.Module, layers: Mapping[str, str] | Sequence[str], *,
         name: str = "custom/module", input: InputConfig | None = None,
         roles: Mapping[str, str] | None = None, device: str = "cpu") -> ZooModel:
    """Any `nn.Module` as a zoo model, no plugin needed: `layers` maps layer names to module
    paths (or lists module paths); layouts and widths are read from one probe forward pass."""
    from zoo.wrapped import wrap_module

    return wrap_module(module, layers, name=name, input=input, roles=roles,
                       device=check_device(device))


def dataset(spec: str | Dataset, *, skip_bad: bool = False) -> Dataset:
    """Open a data source: `samples`, `synthetic:N`, `lesions:N`, `isic:PATH` or an image
    folder. With `skip_bad`, unreadable images and folders are dropped and listed in
    `.skipped`."""
    from zoo.data import open_dataset

    if not isinstance(spec, str):
        return spec
    data = open_dataset(spec, skip_bad=skip_bad)
    if not len(data):
        raise ZooError(f"no readable images in {spec}")
    return data


def _model(model: str | ModelSpec | ZooModel) -> ZooModel:
    from zoo.model import ZooModel

    return model if isinstance(model, ZooModel) else load(model)


def feature_cache(cache: bool | FeatureCache) -> FeatureCache | None:
    """The default on-disk feature cache for `True`, none for `False`, or the cache given."""
    from zoo.cache import FeatureCache

    if cache is True:
        return FeatureCache()
    return cache or None


def extract(model: str | ModelSpec | ZooModel, data: str | Dataset,
            layers: str | Sequence[str] | None = None, reduction: str = "gap", *,
            batch_size: int = 16, cache: bool | FeatureCache = True, dtype: str = "float32",
            progress: Progress | None = None, workers: int = 0,
            precision: str = "fp32") -> FeatureSet:
    """Features of `layers` (names or globs, comma-separated or a list; None: all) over `data`,
    reduced to (samples, dims) by `reduction` (gap, cls, grid:K, positions:K, flatten, none),
    rows labelled by sample id. Cached on disk unless `cache=False`; `dtype="float16"` stores
    half-precision features (float32 keeps metric values at full accuracy). `workers` decode
    images in that many processes; `precision` "bf16"/"fp16" runs the forward under autocast
    (keyed apart; "fp32" is exact)."""
    from zoo.featureset import extract_set
    from zoo.features import parse_reduction

    parse_reduction(reduction)
    return extract_set(_model(model), dataset(data), split_names(layers), reduction, batch_size,
                       feature_cache(cache), progress, dtype, workers, precision)


def split_names(layers: str | Sequence[str] | None) -> list[str] | None:
    """`"a,b"` or `["a,b", "c"]` -> `["a", "b", "c"]`; None (or nothing) stays None."""
    if layers is None:
        return None
    items = [layers] if isinstance(layers, str) else list(layers)
    return [p.strip() for item in items for p in item.split(",") if p.strip()] or None


def compare(a: FeatureSet | str | ModelSpec | ZooModel, b: FeatureSet | str | ModelSpec | ZooModel,
            metrics: str | Sequence[str] | None = None, *, data: str | Dataset | None = None,
            layers_a: str | Sequence[str] | None = None,
            layers_b: str | Sequence[str] | None = None, reduction: str = "gap",
            permutations: int = 0, intervals: bool = False, images: int = 0,
            device: str = "cpu",
            batch_size: int = 16, cache: bool | FeatureCache = True,
            progress: Progress | None = None, workers: int = 0,
            precision: str = "fp32", baseline: str | None = None,
            baseline_weights: str | None = None) -> Comparison:
    """Compare two feature sets (from `extract`), or two models over `data`, layer by layer on
    the same samples: every metric on every layer pair, with permutation p-values and 95%
    intervals (grouped jackknife, coverage-tested metrics only) when asked and, for models, `images` PCA-to-RGB activation maps (`workers` and
    `precision` as in `extract`). `baseline` "random-init" or "seed" adds B's twin as a
    reference band (zoo.baselines; a trained model's seed twin is `baseline_weights`)."""
    from zoo.comparison import compare as compare_sets
    from zoo.comparison import compare_models
    from zoo.featureset import FeatureSet

    device = check_device(device)
    if isinstance(a, FeatureSet) and isinstance(b, FeatureSet):
        return compare_sets(a, b, metrics, permutations=permutations, intervals=intervals,
                            device=device, progress=progress)
    if isinstance(a, FeatureSet) or isinstance(b, FeatureSet):
        raise ZooError("pass two feature sets (from zoo.extract) or two models, not one of each")
    if baseline_weights and baseline != "seed":
        raise ZooError("baseline_weights is the checkpoint of a seed twin: use it with "
                       "baseline='seed'")
    if data is None:
        raise ZooError("comparing models needs data=...: a dataset name or folder")
    from zoo.features import parse_reduction

    parse_reduction(reduction)
    model_a = _model(a)
    model_b = model_a if b == a else _model(b)
    data, store = dataset(data), feature_cache(cache)
    twin = None
    if baseline:  # built first: a twin that cannot exist is refused before any extraction
        from zoo.baselines import add_baseline, make_twin

        twin = make_twin(model_b, baseline, baseline_weights)
    c = compare_models(model_a, model_b, data, metrics, layers_a=split_names(layers_a),
                       layers_b=split_names(layers_b), reduction=reduction,
                       permutations=permutations, intervals=intervals, images=images,
                       device=device, batch_size=batch_size, cache=store,
                       progress=progress, workers=workers, precision=precision)
    if twin is not None:
        add_baseline(c, twin, baseline, data, batch_size=batch_size, cache=store,
                     progress=progress)
    return c


def matrix(models: Sequence[str], data: str | Dataset, metric: str = "cka", *,
           layers: str | Sequence[str] | None = None, reduction: str = "gap",
           random_init: bool = False, weights: Mapping[str, str] | None = None,
           device: str = "cpu", batch_size: int = 16, run: str | Path | None = None,
           cache: bool = True, progress: Progress | None = None) -> MatrixResult:
    """The all-pairs (model, layer) matrix across `models` under one metric: the same resumable
    plan executor as `zoo matrix` (a killed run resumes from its run folder), features shared
    with the feature cache."""
    from zoo.matrix_run import run_matrix

    return run_matrix(list(models), dataset(data), metric, layers=split_names(layers),
                      reduction=reduction, random_init=random_init, weights=dict(weights or {}),
                      device=check_device(device), batch_size=batch_size, run=run,
                      cache=cache, progress=progress)


def validate(metrics: str | Sequence[str] | None = None, *, setting: str = "quick",
             seeds: int | None = None, device: str = "cpu", threads: int | None = 1,
             progress: Progress | None = None) -> Validation:
    """Which metric to trust: train small CNNs from several seeds and design groups on generated
    gratings, then score every metric by layer identification, monotonicity, group separation
    and correlation with output differences (see zoo.validation)."""
    from zoo.validation import validate as run

    return run(metrics, setting=setting, seeds=seeds, device=check_device(device),
               threads=threads, progress=progress)
