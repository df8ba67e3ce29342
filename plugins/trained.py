"""`zoo train` checkpoints as models: each `<cache>/checkpoints/<id>/zoo.json` registers `base.tag`.

A checkpoint marked default (as `zoo demo` marks its own) becomes its family's default, so
`zoo compare unetpp mask2former` uses the project's trained models when no others are given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str, *,
          folder: Path, meta: dict[str, Any], **options: Any) -> Any:
    """Load the base family's model with this checkpoint's weights and training options."""
    from zoo.errors import WeightsError
    from zoo.registry.host import get_registry

    if weights or random_init:
        raise WeightsError(f"{spec.id} is a trained checkpoint ({folder}); load the base model "
                           f"{meta['base']} to pass --weights or --random-init")
    model = get_registry().model(meta["base"]).load(
        weights=str(folder / "weights.safetensors"), device=device,
        **{**meta["options"], **options})
    model.spec = spec
    return model


def trained_specs(root: Path) -> list[ModelSpec]:
    """One ModelSpec per readable checkpoint folder under `root/checkpoints`."""
    specs = []
    for meta_path in sorted((root / "checkpoints").glob("*/zoo.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        family, arch = meta["id"].removesuffix(f".{meta['tag']}").split("/", 1)
        test = meta.get("train", {}).get("metrics", {}).get("test", {})
        layers = [LayerInfo(**d) for d in meta["layers"]]
        specs.append(ModelSpec(
            family, arch, tag=meta["tag"], input=InputConfig(**{
                k: tuple(v) if isinstance(v, list) else v for k, v in meta["input"].items()}),
            loader=lambda spec, folder=meta_path.parent, meta=meta, **kw: _load(
                spec, folder=folder, meta=meta, **kw),
            layers=lambda layers=layers: list(layers), default=bool(meta.get("default")),
            weights=f"trained checkpoint {meta_path.parent}",
            description=(meta.get("description") or meta["base"])
            + f" fine-tuned on {meta.get('data', '?')} by zoo train"
            + (f" (test Dice {test['dice']:.3f})" if "dice" in test else "")))
    return specs


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    from zoo.io import cache_root

    for spec in trained_specs(cache_root()):
        register(spec)
