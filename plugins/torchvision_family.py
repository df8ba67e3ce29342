"""`torchvision/<name>[.<weights>]`: any torchvision classification model, its stage modules.

Layers: the model's stages as torchvision builds them (ResNet `layer1..4`, RegNet
`trunk_output.block*`, `features.*` of VGG/ConvNeXt/EfficientNet/MobileNet/Swin (NHWC), ViT
`encoder.layers.*` with its class token, MaxViT `blocks.*`, else the top-level children), then the
pooled embedding where the model has `avgpool`. Features by forward hooks on those modules
(equal to torchvision's FX `create_feature_extractor` on the same nodes, which `zoo check`
compares). Preprocessing: the weights' own `Weights.transforms()` object (DEFAULT weights when no
tag is given). Weights: the weights' file in torch hub's checkpoints folder, read safely and put
through torchvision's own builder (its num_classes/image_size overrides), or --weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from zoo import hookimpl
from zoo.errors import UnknownNameError
from zoo.model.weights import torch_hub_dir
from zoo.plugin import CachedWeights, find_weights, load_into, load_options
from zoo.plugins._generic import (
    PlanRow,
    declare_layers,
    hook_features,
    layers_without_weights,
    listing_row,
    load_index,
    make_model,
    seeded,
)
from zoo.registry.families import ModelFamily, glob_match
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

SKIP_CHILDREN = ("fc", "classifier", "heads", "head", "dropout", "aux1", "aux2", "AuxLogits")


def _build_index() -> dict[str, Any]:
    from torchvision import models

    out: dict[str, Any] = {}
    for name in models.list_models(module=models):
        try:
            enum = models.get_model_weights(name)
        except (KeyError, ValueError):
            out[name] = {"default": "", "weights": {}}
            continue
        out[name] = {"default": enum.DEFAULT.name,
                     "weights": {w.name: w.url.rsplit("/", 1)[-1] for w in enum}}
    return {"models": out}


def index() -> dict[str, Any]:
    """torchvision's classification models and their weights' file names."""
    return load_index("torchvision", "torchvision", _build_index)


def _present(file: str) -> bool:
    from pathlib import Path

    return bool(file) and (Path(torch_hub_dir()) / "checkpoints" / file).is_file()


def search(pattern: str) -> list[dict[str, Any]]:
    """`torchvision/<name>` and `torchvision/<name>.<weights>` ids matching `pattern`."""
    models = index()["models"]
    rows = []
    for name, entry in models.items():
        ids = {f"torchvision/{name}": entry["weights"].get(entry["default"], "")}
        ids.update({f"torchvision/{name}.{w}": f for w, f in entry["weights"].items()})
        for model_id in glob_match(list(ids), pattern):
            rows.append(listing_row(model_id, _present(ids[model_id]),
                                    "torchvision weights" if "." in model_id else
                                    "torchvision model (DEFAULT weights, or --random-init)"))
    return sorted(rows, key=lambda r: r["id"])


def resolve(rest: str) -> ModelSpec:
    """The spec of `torchvision/<name>[.<weights>]`."""
    name, _, tag = rest.partition(".")
    models = index()["models"]
    if name not in models:
        raise UnknownNameError("torchvision model", name, models,
                               "See `zoo list 'torchvision/*'`")
    entry = models[name]
    if tag and tag not in entry["weights"]:
        raise UnknownNameError(f"weights of torchvision/{name}", tag, entry["weights"])
    chosen = tag or entry["default"]
    file = entry["weights"].get(chosen, "")
    input, _ = _transform(name, chosen)

    def layers() -> list[LayerInfo]:
        from torchvision import models as tvm

        return layers_without_weights(lambda: tvm.get_model(name), plan, extract, input.size)

    return ModelSpec("torchvision", name, _loader(name, chosen), layers, tag=tag, input=input,
                     weights=f"torchvision {name} {chosen}" if chosen else "none published",
                     description=f"torchvision {name}" + (f" ({chosen})" if chosen else ""),
                     sources=(CachedWeights(files=(file,)),) if file else ())


def _transform(name: str, weights: str) -> tuple[InputConfig, Any]:
    """The weights' own transforms() object and the InputConfig that describes it."""
    from torchvision import models

    if not weights:
        return InputConfig(), None
    t = models.get_model_weights(name)[weights].transforms()
    crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
    return InputConfig(size=crop, mean=tuple(t.mean), std=tuple(t.std),
                       interpolation=t.interpolation.value, crop_pct=crop / resize), t


def plan(model: Any) -> list[PlanRow]:
    """The stage modules of a torchvision classifier, in forward order (see module doc)."""
    children = dict(model.named_children())
    kind = type(model).__name__
    if all(f"layer{i}" in children for i in range(1, 5)):
        paths = ["maxpool"] + [f"layer{i}" for i in range(1, 5)]
    elif kind == "VisionTransformer":
        blocks = [f"encoder.layers.{n}" for n, _ in model.encoder.layers.named_children()]
        return ([PlanRow(p, p, "encoder", prefix=1) for p in blocks]
                + [PlanRow("encoder.ln", "encoder.ln", "encoder", prefix=1)])
    elif kind == "RegNet":
        paths = ["stem"] + [f"trunk_output.{n}" for n, _ in model.trunk_output.named_children()]
    elif kind == "MaxVit":
        paths = ["stem"] + [f"blocks.{n}" for n, _ in model.blocks.named_children()]
    elif "features" in children:
        paths = [f"features.{n}" for n, _ in model.features.named_children()]
    else:
        paths = [n for n in children if n not in SKIP_CHILDREN and n != "avgpool"]
    nhwc = kind == "SwinTransformer"
    rows = [PlanRow(p, p, "stem" if i == 0 else "encoder", nhwc=nhwc)
            for i, p in enumerate(paths)]
    if "avgpool" in children:
        rows.append(PlanRow("avgpool", "avgpool", "embedding"))
    return rows


def extract(module: Any, x: Any, rows: Sequence[PlanRow]) -> dict[str, Any]:
    """Forward hooks on the rows' modules."""
    out: dict[str, Any] = {}
    hook_features(module, rows, lambda: module(x), out)
    return out


def upstream(module: Any, x: Any, rows: Sequence[PlanRow]) -> dict[str, Any]:
    """torchvision's FX feature extractor on the same nodes (the reference of `zoo check`)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    from zoo.plugins._generic import channels_last

    fx = create_feature_extractor(module, return_nodes={r.module: r.name for r in rows})
    return {r.name: channels_last(r, t) for r, t in zip(rows, fx(x).values())}


@contextlib.contextmanager
def _local_file(path: str, trust: bool) -> Iterator[None]:
    """torchvision's builders read weights through load_state_dict_from_url: here they read
    the located local file with zoo's safe reader instead (never the network)."""
    from unittest import mock

    from torchvision.models import _api

    from zoo.model.weights import read_state_dict

    with mock.patch.object(_api, "load_state_dict_from_url",
                           lambda *_a, **_k: read_state_dict(path, trust=trust)):
        yield


def _loader(name: str, weights_name: str) -> Callable[..., Any]:
    def load(spec: ModelSpec, weights: str | None = None, random_init: bool = False,
             device: str = "cpu", **options: Any) -> Any:
        from torchvision import models

        opts = load_options(spec, options)
        source = find_weights(spec, weights, random_init, opts, spec.sources,
                              accepts="a torchvision state dict")
        if source.random_init:
            model = seeded(lambda: models.get_model(name))
        elif weights:  # a user's file: the plain architecture, loaded exactly
            model = models.get_model(name)
            load_into(model, source.read(), str(source.path))
            source = source.detected("state dict")
        else:
            with _local_file(str(source.file()), opts.trust_weights):
                model = models.get_model(
                    name, weights=models.get_model_weights(name)[weights_name])
            source = source.detected(f"torchvision {weights_name}")
        input = opts.input(spec)
        rows = plan(model)
        layers = (spec.layers() if input.size == spec.input.size else
                  declare_layers(model.eval(), rows, extract, input.size, device="cpu"))
        _, transform = _transform(name, weights_name)
        prov = {"library": "torchvision", "weights_enum": weights_name}
        return make_model(spec, model, layers, rows, extract, "forward hooks", source, input,
                          device, prov, transform=transform, upstream=upstream)

    return load


@hookimpl
def register_model_families(register: Callable[[ModelFamily], None]) -> None:
    register(ModelFamily("torchvision", resolve, search,
                         description="any torchvision classification model[.weights]",
                         example="torchvision/resnet50"))
