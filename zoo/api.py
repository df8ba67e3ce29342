"""The notebook API, re-exported as `zoo.<name>`: find and load models (or wrap your own
`nn.Module`), open data, extract labelled features, compare two models, run the zoo matrix.

    import zoo
    a = zoo.extract(zoo.load("toy/cnn", random_init=True), "samples", layers="stage*")
    b = zoo.extract(zoo.load("toy/vit", random_init=True), "samples")
    result = zoo.compare(a, b, metrics="cka,svcca")   # or zoo.compare_models(m1, m2, data)
    result.table(); result.heatmap("cka"); result.save("runs/mine")
    same = zoo.open("runs/mine")                        # any saved result, read back

Nothing inside zoo imports this module: it only binds the library's layers into calls.

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

    from zoo.comparisons.comparison import Comparison
    from zoo.comparisons.matrix import MatrixResult
    from zoo.data.dataset import Dataset
    from zoo.features.cache import FeatureCache
    from zoo.features.featureset import FeatureSet
    from zoo.model.base import ZooModel
    from zoo.progress import Progress
    from zoo.registry.specs import InputConfig, ModelSpec
    from zoo.study.validation import Validation
    from zoo.study.validation_nets import NetConfig

# The file that marks each kind of saved result folder, and the class that reads it back.
OPENERS = {"results.json": "zoo.comparisons.comparison:Comparison",
           "matrix.json": "zoo.comparisons.matrix:MatrixResult",
           "ids.json": "zoo.features.featureset:FeatureSet",
           "cut.json": "zoo.align.pipeline:CutRun", "maps.json": "zoo.align.pipeline:AlignRun",
           "pairwise.json": "zoo.align.pipeline:AlignRun",
           "dissect.json": "zoo.concepts.pipeline:DissectRun",
           "lce.json": "zoo.concepts.embedding:LCEResult"}


def list_models(pattern: str = "*") -> list[ModelSpec]:
    """Registered models whose id (`family/arch.tag`) matches the glob `pattern`."""
    from zoo.registry.host import get_registry

    return [s for s in get_registry().models.values()
            if fnmatch.fnmatchcase(s.id, pattern) or fnmatch.fnmatchcase(s.family, pattern)]


def load(model: str | ModelSpec, *, weights: str | None = None, random_init: bool = False,
         device: str = "cpu", **options: Any) -> ZooModel:
    """Load a registered model (`family`, `family/arch` or `family/arch.tag`) with its real
    weights (`weights` path, else the local caches) or, when asked, fixed-seed random weights."""
    from zoo.model.loading import load_model

    return load_model(model, weights=weights, random_init=random_init, device=device, **options)


def wrap(module: nn.Module, layers: Mapping[str, str] | Sequence[str], *,
         name: str = "custom/module", input: InputConfig | None = None,
         roles: Mapping[str, str] | None = None, device: str = "cpu",
         prefix_tokens: int | Mapping[str, int] | None = None) -> ZooModel:
    """Any `nn.Module` as a zoo model, no plugin needed: `layers` maps layer names to module
    paths (or lists module paths); layouts and widths are read from one probe forward pass.
    `prefix_tokens` (one count, or per layer) declares class/register tokens of token layers;
    their patch grid is inferred, and tokens that form no grid are an error here."""
    from zoo.model.loading import check_device
    from zoo.model.wrapped import wrap_module

    return wrap_module(module, layers, name=name, input=input, roles=roles,
                       device=check_device(device), prefix_tokens=prefix_tokens)


def dataset(spec: str | Dataset, *, skip_bad: bool = False) -> Dataset:
    """Open a data source: `samples`, `synthetic:N`, `lesions:N`, `isic:PATH` or an image
    folder. With `skip_bad`, unreadable images and folders are dropped and listed in
    `.skipped`."""
    from zoo.data.resolve import as_dataset

    return as_dataset(spec, skip_bad=skip_bad)


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
    from zoo.data.resolve import as_dataset
    from zoo.features.cache import as_cache
    from zoo.features.featureset import extract_set
    from zoo.features.layers import parse_reduction
    from zoo.model.loading import load_model
    from zoo.model.selection import split_names

    parse_reduction(reduction)
    return extract_set(load_model(model), as_dataset(data), split_names(layers), reduction,
                       batch_size, as_cache(cache), progress, dtype, workers, precision)


def compare(a: FeatureSet, b: FeatureSet, metrics: str | Sequence[str | Any] | None = None, *,
            permutations: int = 0, intervals: bool = False, device: str = "cpu",
            progress: Progress | None = None) -> Comparison:
    """Compare two feature sets (from `extract`, same data and reduction) layer by layer, rows
    paired by sample id: every metric (a name or a bound `zoo.metrics.get(...)`) on every layer
    pair, with permutation p-values and 95% intervals (grouped jackknife, coverage-tested
    metrics only) when asked. To compare two models over data, use `compare_models`."""
    from zoo.comparisons.comparison import compare as compare_sets
    from zoo.features.featureset import FeatureSet
    from zoo.model.loading import check_device

    if not (isinstance(a, FeatureSet) and isinstance(b, FeatureSet)):
        raise ZooError("zoo.compare takes two feature sets (from zoo.extract); to compare two "
                       "models over data use zoo.compare_models(model_a, model_b, data)")
    return compare_sets(a, b, metrics, permutations=permutations, intervals=intervals,
                        device=check_device(device), progress=progress)


def compare_models(a: str | ModelSpec | ZooModel, b: str | ModelSpec | ZooModel,
                   data: str | Dataset, metrics: str | Sequence[str | Any] | None = None, *,
                   layers_a: str | Sequence[str] | None = None,
                   layers_b: str | Sequence[str] | None = None, reduction: str = "gap",
                   permutations: int = 0, intervals: bool = False, images: int = 0,
                   random_init: bool = False, device: str = "cpu", batch_size: int = 16,
                   cache: bool | FeatureCache = True, progress: Progress | None = None,
                   workers: int = 0, precision: str = "fp32", baseline: str | None = None,
                   baseline_weights: str | None = None) -> Comparison:
    """Extract two models over `data` and compare them layer by layer (as `zoo compare` does),
    with `images` PCA-to-RGB activation maps; names load with their weights, or fixed-seed
    random weights with `random_init=True` (`workers`, `precision` as in `extract`).
    `baseline` "random-init" or "seed" adds B's twin as a reference band
    (zoo.comparisons.baselines; a trained model's seed twin is `baseline_weights`)."""
    from zoo.comparisons.comparison import compare_models as run
    from zoo.data.resolve import as_dataset
    from zoo.features.cache import as_cache
    from zoo.features.layers import parse_reduction
    from zoo.model.loading import check_device, load_models
    from zoo.model.selection import split_names

    parse_reduction(reduction)
    device = check_device(device)
    if baseline_weights and baseline != "seed":
        raise ZooError("baseline_weights is the checkpoint of a seed twin: use it with "
                       "baseline='seed'")
    model_a, model_b = load_models([a, b], random_init=random_init, device=device)
    data, store = as_dataset(data), as_cache(cache)
    twin = None
    if baseline:  # built first: a twin that cannot exist is refused before any extraction
        from zoo.comparisons.baselines import add_baseline, make_twin

        twin = make_twin(model_b, baseline, baseline_weights)
    c = run(model_a, model_b, data, metrics, layers_a=split_names(layers_a),
            layers_b=split_names(layers_b), reduction=reduction, permutations=permutations,
            intervals=intervals, images=images, device=device, batch_size=batch_size,
            cache=store, progress=progress, workers=workers, precision=precision)
    if twin is not None:
        add_baseline(c, twin, baseline, data, batch_size=batch_size, cache=store,
                     progress=progress)
    return c


def matrix(models: Sequence[str], data: str | Dataset, metric: str | Any = "cka", *,
           layers: str | Sequence[str] | None = None, reduction: str = "gap",
           random_init: bool = False, weights: Mapping[str, str] | None = None,
           device: str = "cpu", batch_size: int = 16, run: str | Path | None = None,
           cache: bool = True, progress: Progress | None = None) -> MatrixResult:
    """The all-pairs (model, layer) matrix across `models` under one metric: the same resumable
    plan executor as `zoo matrix` (a killed run resumes from its run folder), features shared
    with the feature cache."""
    from zoo.comparisons.matrix import run_matrix
    from zoo.data.resolve import as_dataset
    from zoo.model.loading import check_device
    from zoo.model.selection import split_names

    return run_matrix(list(models), as_dataset(data), metric, layers=split_names(layers),
                      reduction=reduction, random_init=random_init, weights=dict(weights or {}),
                      device=check_device(device), batch_size=batch_size, run=run,
                      cache=cache, progress=progress)


def open(folder: str | Path) -> Any:  # noqa: A001 - zoo.open reads what .save wrote
    """Read any saved result folder (feature set, comparison, matrix, cut, alignment, dissection,
    LCE) back into the object that wrote it."""
    import importlib

    folder = Path(folder)
    for marker, where in OPENERS.items():
        if (folder / marker).is_file():
            module, _, name = where.partition(":")
            return getattr(importlib.import_module(module), name).load(folder)
    raise ZooError(f"{folder} holds no saved zoo result (none of {', '.join(OPENERS)}); pass "
                   "a folder written by .save() or a zoo command's --out")


def validate(metrics: str | Sequence[str] | None = None, *, setting: str = "quick",
             seeds: int | None = None, device: str = "cpu", threads: int | None = 1,
             config: NetConfig | None = None, progress: Progress | None = None) -> Validation:
    """Which metric to trust: train small CNNs from several seeds and design groups on generated
    gratings, then score every metric by layer identification, monotonicity, group separation
    and correlation with output differences (see zoo.study.validation; `config`, a
    zoo.study.validation_nets.NetConfig, overrides the setting's sizes)."""
    from zoo.model.loading import check_device
    from zoo.study.validation import validate as run

    return run(metrics, setting=setting, seeds=seeds, device=check_device(device),
               threads=threads, config=config, progress=progress)
