"""The cheap records plugins register: models, their layers, input conventions and datasets.

Everything here is importable without torch, so `zoo list` and `zoo info` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.data import Dataset
    from zoo.model import ZooModel

LAYOUTS = ("NCHW", "NLC", "NQC", "NC")
ROLES = ("stem", "encoder", "decoder", "pixel_decoder", "query_decoder", "head", "embedding")


@dataclass(frozen=True)
class InputConfig:
    """How a checkpoint expects its images: square size, normalisation and resize filter."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def key(self) -> dict[str, Any]:
        """The fields that change pixel values, for cache keys."""
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation}


@dataclass(frozen=True)
class LayerInfo:
    """One hookable feature of a model.

    `layout` is the layout of the channels-last feature the model yields: NCHW maps come out as
    (N, H, W, C), NLC tokens as (N, L, C) with `prefix_tokens` class/register tokens first, NQC
    query states as (N, Q, C), NC vectors as (N, C). `call` selects one call of a module that
    fires several times per forward (the layer is then named `name@call`).
    """

    name: str
    module: str
    role: str
    layout: str
    channels: int
    stride: int | None = None
    depth: float = 0.0
    prefix_tokens: int = 0
    call: int | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layer {self.name}: layout {self.layout!r} not in {LAYOUTS}")
        if not 0.0 <= self.depth <= 1.0:
            raise ValueError(f"layer {self.name}: depth {self.depth} outside [0, 1]")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: `family/arch.tag`, its layers and a lazy loader.

    `loader(spec, weights=, random_init=, device=, **options)` builds the `ZooModel` (heavy
    imports happen there); `layers()` lists the layers without loading weights. Every family
    accepts the option `tiny=True`: a reduced config of the same architecture for tests.
    """

    family: str
    arch: str
    loader: Callable[..., ZooModel] = field(repr=False, compare=False)
    layers: Callable[[], list[LayerInfo]] = field(repr=False, compare=False)
    tag: str = ""
    input: InputConfig = InputConfig()
    weights: str = ""
    description: str = ""
    default: bool = False

    @property
    def id(self) -> str:
        return f"{self.family}/{self.arch}" + (f".{self.tag}" if self.tag else "")

    def load(self, weights: str | None = None, random_init: bool = False,
             device: str = "cpu", **options: Any) -> ZooModel:
        """Build the model with real weights (`weights` path or local cache) or random init."""
        return self.loader(self, weights=weights, random_init=random_init, device=device,
                           **options)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data source; `open(arg)` returns a `Dataset` (arg: path or option string)."""

    name: str
    open: Callable[[str | None], Dataset] = field(repr=False, compare=False)
    description: str = ""
    needs_path: bool = False
