"""The plugin kit: what a model family needs besides `zoo.hookimpl` and the records in
zoo.registry.specs.

A loader is `load(spec, weights=, random_init=, device=, **options)`. With this module it reads:

    opts = load_options(spec, options)  # tiny, size, crop_pct, source, trust_weights
    source = find_weights(spec, weights, random_init, opts, cached=[CachedWeights("org/repo")])
    module = build_seeded(lambda: MyNet())  # random init is the same every time
    if not source.random_init:
        load_into(module, source.read(), str(source.path))  # safe unless --trust-weights
        source = source.detected("my format")
    return wrap_model(spec, module, layers(), source, opts.input(spec), device)

Layer lists: `in_order` (relative depth from forward order), `resnet_stage_rows`. Segmentation
families (trainable by `zoo train`): `Segmentation`, `segmentation_size`. Everything here imports
without torch, so registering specs stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownNameError, ZooError
from zoo.model.pretrained import quiet_transformers
from zoo.model.weights import (
    CachedWeights,
    WeightSource,
    build_seeded,
    load_into,
    read_state_dict,
    resolve_weights,
    unwrap_checkpoint,
)
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

if TYPE_CHECKING:
    from zoo.model.base import ZooModel

__all__ = ["Row", "in_order", "resnet_stage_rows", "LoadOptions", "load_options", "find_weights",
           "wrap_model", "quiet_transformers", "segmentation_size", "Segmentation",
           "CachedWeights", "WeightSource", "build_seeded", "load_into", "read_state_dict",
           "unwrap_checkpoint", "COMMON_OPTIONS"]

Row = tuple[str, str, str, dict[str, Any]]  # name, module path, role, other LayerInfo fields
# Build options every built-in family takes (`zoo extract --size/--crop-pct/--weights-source/
# --trust-weights`; `tiny` builds a reduced config of the same architecture for tests).
COMMON_OPTIONS = ("tiny", "size", "crop_pct", "source", "trust_weights")


# --- layer lists --------------------------------------------------------------------------------

def in_order(rows: Sequence[Row]) -> list[LayerInfo]:
    """LayerInfos from rows listed in forward order; relative depth is the position in [0, 1]."""
    last = max(len(rows) - 1, 1)
    return [LayerInfo(name, module, role, depth=i / last, **fields)
            for i, (name, module, role, fields) in enumerate(rows)]


def resnet_stage_rows(blocks: Sequence[int], widths: Sequence[int]) -> list[Row]:
    """Bottleneck stages (x4 expansion, strides 4..32): each stage's blocks but its last
    (`layer1.0`, `layer1.1`, ...), then the stage output `layer1` (which is its last block)."""
    rows: list[Row] = []
    for i, (n, width) in enumerate(zip(blocks, widths)):
        shape = dict(layout="NCHW", channels=4 * width, stride=4 * 2 ** i)
        rows += [(f"layer{i + 1}.{j}", f"layer{i + 1}.{j}", "encoder", shape)
                 for j in range(n - 1)]
        rows.append((f"layer{i + 1}", f"layer{i + 1}", "encoder", shape))
    return rows


# --- load options, weights, wrapping ------------------------------------------------------------

@dataclass(frozen=True)
class LoadOptions:
    """The common build options, parsed; `extra` holds the family's own accepted ones."""

    tiny: bool = False
    size: int | None = None
    crop_pct: float | None = None
    source: str | None = None
    trust_weights: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def input(self, base: InputConfig | ModelSpec) -> InputConfig:
        """`base` (an InputConfig, or a spec's) with this load's size / crop_pct recorded."""
        cfg = base.input if isinstance(base, ModelSpec) else base
        return cfg.with_overrides(self.size, self.crop_pct)


def load_options(spec: ModelSpec, options: dict[str, Any],
                 extra: Sequence[str] = ()) -> LoadOptions:
    """Parse a loader's `**options`: the COMMON_OPTIONS plus the family's `extra` names; any other
    name is a user error listing the accepted ones (never a TypeError)."""
    known = COMMON_OPTIONS + tuple(extra)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnknownNameError(f"build option of {spec.id}", unknown[0], known)
    common = {k: options[k] for k in COMMON_OPTIONS if options.get(k) is not None}
    size, crop = common.get("size"), common.get("crop_pct")
    if size is not None and (type(size) is not int or size < 1):
        raise ZooError(f"{spec.id}: size={size!r} must be a positive whole number of pixels")
    if crop is not None and (type(crop) not in (int, float) or not 0 < crop <= 1):
        raise ZooError(f"{spec.id}: crop_pct={crop!r} must be a fraction in (0, 1]")
    return LoadOptions(**common, extra={k: options[k] for k in extra if k in options})


def find_weights(spec: ModelSpec, weights: str | None, random_init: bool, opts: LoadOptions,
                 cached: Sequence[CachedWeights] = (), accepts: str = "") -> WeightSource:
    """`zoo.model.weights.resolve_weights` with this load's `source` choice and trust flag."""
    return resolve_weights(spec.id, weights, random_init, cached, accepts, source=opts.source,
                           trust=opts.trust_weights)


def wrap_model(spec: ModelSpec, module: Any, layers: list[LayerInfo], source: WeightSource,
               input: InputConfig, device: str, *, tiny: bool = False,
               cls: type | None = None) -> ZooModel:
    """The ZooModel (or family subclass `cls`) for a built module: the weights' fingerprint (tiny
    random builds keyed apart, random init keyed by the built weights' hash), the resolved
    input transform, and the weights' source."""
    from zoo.model.base import ZooModel

    fingerprint = source.fingerprint("tiny" if tiny else "")
    if source.random_init:  # keyed by the weights as built: a plugin may change torch's
        from zoo.model.wrapped import state_fingerprint  # default dtype or init at import

        fingerprint += f":{state_fingerprint(module)[:16]}"
    return (cls or ZooModel)(spec, module, layers, fingerprint=fingerprint,
                             random_init=source.random_init, device=device, input=input,
                             source=source)


# --- segmentation families ----------------------------------------------------------------------

def segmentation_size(spec: ModelSpec, size: int) -> int:
    """A segmentation family's input size, checked: a multiple of its deepest stride, 32, so every
    layer's map is exactly size / stride (a clear error otherwise)."""
    if size < 32 or size % 32:
        raise ZooError(f"{spec.id}: size={size} must be a multiple of 32 (e.g. 128, as in the "
                       "study, or 224, 256, 512)")
    return size


class Segmentation:
    """Mixin for a segmentation family's ZooModel subclass: the loss and trainable parameters of
    zoo.study.train's Segmenter protocol; the subclass gives `segmentation_logits` and
    `frozen_part`,
    the module path that --freeze-encoder freezes (a path, never a substring match)."""

    frozen_part: str
    module: Any
    segmentation_logits: Callable[[Any], Any]

    def segmentation_loss(self, x: Any, masks: Any, kind: str) -> Any:
        """The zoo.study.segmentation loss `kind` on the (N, H, W) foreground logits."""
        from zoo.study.segmentation import segmentation_loss

        return segmentation_loss(self.segmentation_logits(x), masks, kind)

    def set_trainable(self, freeze_encoder: bool) -> list[Any]:
        """Train mode, except the frozen part (eval mode, no gradients); the params to optimise."""
        module = self.module
        module.train()
        module.requires_grad_(True)
        if freeze_encoder:
            module.get_submodule(self.frozen_part).eval().requires_grad_(False)
        return [p for p in module.parameters() if p.requires_grad]
