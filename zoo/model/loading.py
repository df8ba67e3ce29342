"""Loading registered models by name onto a checked device: the one path `zoo.load`, the CLI and
the pipelines (matrix, cut, align, dissect, train) share; several models of one command at once,
so every model without weights is named in one error with the ways forward."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.model.base import ZooModel
    from zoo.registry.specs import ModelSpec


def check_device(device: str) -> str:
    """`device` if usable here (cpu, cuda, cuda:N); a clear error with the way out otherwise."""
    if device == "cpu":
        return device
    if not isinstance(device, str) or not (
            device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ZooError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise ZooError(f"device {device}: CUDA is not available here; use cpu")
    if ":" in device and int(device[5:]) >= torch.cuda.device_count():
        raise ZooError(f"device {device}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def load_model(model: str | ModelSpec | ZooModel, *, weights: str | None = None,
               random_init: bool = False, device: str = "cpu", **options: Any) -> ZooModel:
    """A registered model (`family`, `family/arch`, `family/arch.tag` or its spec) with its real
    weights (`weights` path, else the local caches) or, when asked, fixed-seed random weights;
    a model already loaded is returned as it is."""
    from zoo.model.base import ZooModel
    from zoo.registry.host import get_registry

    if isinstance(model, ZooModel):
        return model
    if weights and random_init:
        raise ZooError("weights and random init exclude each other; pass one")
    if weights and not Path(weights).expanduser().exists():
        raise ZooError(f"weights {weights!r} do not exist; pass an existing file or folder")
    from zoo.registry.specs import ModelSpec

    spec = model if isinstance(model, ModelSpec) else get_registry().model(
        model, prefer_trained=not (weights or random_init))
    return spec.load(weights=weights, random_init=random_init, device=check_device(device),
                     **options)


def load_models(names: Sequence[str | ModelSpec | ZooModel],
                weights: Mapping[str, str] | None = None, *,
                random_init: bool = False, device: str = "cpu",
                **options: Any) -> list[ZooModel]:
    """`load_model` of each name (a name given twice is loaded once), `weights` per name; the
    models that have no weights are named together in one `MissingWeights` error."""
    from zoo.model.weights import MissingWeights

    loaded: dict[str, ZooModel] = {}
    missing: MissingWeights | None = None
    for name in dict.fromkeys(names):
        try:
            loaded[name] = load_model(name, weights=(weights or {}).get(name),
                                      random_init=random_init, device=device, **options)
        except MissingWeights as exc:
            missing = exc if missing is None else missing.merged(exc)
    if missing is not None:
        raise missing
    return [loaded[name] for name in names]
