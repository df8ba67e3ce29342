"""The cheap records plugins register: models, their layers, input conventions and datasets.

Everything here is importable without torch, so `zoo list` and `zoo info` stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.data.dataset import Dataset
    from zoo.model.base import ZooModel
    from zoo.model.weights import CachedWeights

LAYOUTS = ("NCHW", "NLC", "NQC", "NC")
ROLES = ("stem", "encoder", "decoder", "pixel_decoder", "query_decoder", "head", "embedding")


LIBRARIES = ("torchvision", "timm", "open_clip", "transformers")


@dataclass(frozen=True)
class InputConfig:
    """How a checkpoint expects its images, as its upstream library resolves it.

    `resize` "shortest": the short side to floor(size / crop_pct) (long side truncated), then a
    centre crop of size x size; "squash": both sides to that length, then the crop. `library`
    runs the transform (zoo.model.transforms): timm, open_clip, torchvision, or transformers (the
    image
    processor of the folder `processor`). `override` records user overrides (`size=256`).
    """

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    resize: str = "shortest"
    library: str = "torchvision"
    override: str = ""
    processor: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            raise ValueError(f"input library {self.library!r} not in {LIBRARIES}")
        if self.resize not in ("shortest", "squash"):
            raise ValueError(f"resize rule {self.resize!r}: use shortest or squash")
        if self.library == "open_clip" and self.crop_pct != 1.0:
            raise ValueError("open_clip's transform has no crop fraction: use library "
                             "'torchvision' for crop_pct < 1")

    @property
    def resize_size(self) -> int:
        """The resize target before the centre crop: floor(size / crop_pct), as timm computes."""
        return math.floor(self.size / self.crop_pct)

    def key(self) -> dict[str, Any]:
        """Every field that changes pixel values (cache keys, provenance; InputConfig(**key))."""
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop_pct": self.crop_pct,
                "resize": self.resize, "library": self.library, "override": self.override}

    def describe(self) -> str:
        """One line for `zoo info` and headers."""
        edge = self.resize_size
        rule = (f"resize short side to {edge} (long side truncated)"
                if self.resize == "shortest" else f"squash to {edge} x {edge}")
        return (f"{self.size} px: {rule}, centre crop {self.size} (crop_pct {self.crop_pct:g}), "
                f"{self.interpolation}, mean {self.mean}, std {self.std}; by {self.library}"
                + (f" ({self.override})" if self.override else ""))

    def with_overrides(self, size: int | None = None, crop_pct: float | None = None
                       ) -> InputConfig:
        """This transform with a user's `size` / `crop_pct`, the override recorded. open_clip's
        builder has no crop fraction, so a crop_pct override runs it through torchvision."""
        changes: dict[str, Any] = {}
        if size is not None and size != self.size:
            if size < 1:
                raise ZooError(f"size={size}: must be a positive pixel count")
            changes["size"] = int(size)
        if crop_pct is not None and crop_pct != self.crop_pct:
            if not 0.0 < crop_pct <= 1.0:
                raise ZooError(f"crop_pct={crop_pct}: must be in (0, 1]")
            changes["crop_pct"] = float(crop_pct)
            if self.library == "open_clip":
                changes["library"] = "torchvision"
        if not changes:
            return self
        note = ",".join(f"{k}={changes[k]}" for k in ("size", "crop_pct") if k in changes)
        return replace(self, **changes, override=",".join(filter(None, [self.override, note])))


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

    @property
    def has_grid(self) -> bool:
        """Whether the features sit on a pixel grid: NCHW maps, or NLC tokens with a patch
        stride (multi-scale token sets, which have none, do not)."""
        return self.layout == "NCHW" or (self.layout == "NLC" and self.stride is not None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: `family/arch.tag`, its layers and a lazy loader.

    `loader(spec, weights=, random_init=, device=, **options)` builds the `ZooModel` (heavy
    imports happen there); `layers()` lists the layers without loading weights. `input` is the
    transform of the family's first weights format (and of random init); `sources` the caches
    looked up, in order; `input_for(format, path)`, when the transform depends on the weights,
    gives it for weights of that format at that path cheaply (configs only, as the loader does).
    Built-in families accept the options of zoo.plugin.COMMON_OPTIONS (`tiny=True`: a reduced
    config of the same architecture for tests).
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
    sources: tuple[CachedWeights, ...] = ()
    input_for: Callable[[str, Any], InputConfig] | None = field(default=None, repr=False,
                                                                 compare=False)

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
