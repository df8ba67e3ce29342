"""`resnet-ssl`: ResNet-50 (timm, torchvision layout) with the published self-supervised weights.

One tag per method (`resnet-ssl/resnet50.moco-v2`, `.swav`, ...). Any tag reads any of the
published checkpoint layouts; the layout is detected from the keys (see FORMATS) and reported in
`ZooModel.weights_source`. Projection heads, prototypes and classifiers are dropped; any other
missing or unexpected backbone key is an error that lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl
from zoo.plugin import (
    CachedWeights,
    build_seeded,
    find_weights,
    in_order,
    load_into,
    load_options,
    resnet_stage_rows,
    wrap_model,
)

# torchvision's evaluation convention, used by the SSL methods' linear evaluation (and timm's
# resnet50.tv_in1k config): Resize 256, CenterCrop 224, bilinear, ImageNet mean/std
INPUT = InputConfig(size=224, crop_pct=0.875)

# Where the backbone sits in each published layout, most specific first (detected by conv1).
FORMATS = (
    ("VISSL trunk (SimCLR, PIRL, NPID, Barlow Twins ...)", "_feature_blocks."),
    ("MoCo v1/v2, PCL", "module.encoder_q."),
    ("MoCo v3", "module.base_encoder."),
    ("PyContrast", "module.encoder."),
    ("mmselfsup / solo-learn", "backbone."),
    ("SwAV, DeepCluster-v2, SeLa-v2", "module."),
    ("torchvision", ""),
)
HEADS = ("fc.", "projection_head.", "prototypes.")  # dropped from the backbone's keys

# tag: (method, published file names looked up in torch hub's cache)
METHODS = {
    "moco-v2": ("MoCo v2", ("moco_v2_800ep_pretrain.pth.tar", "moco_v2_200ep_pretrain.pth.tar")),
    "moco-v1": ("MoCo v1", ("moco_v1_200ep_pretrain.pth.tar",)),
    "moco-v3": ("MoCo v3", ("r-50-1000ep.pth.tar", "r-50-300ep.pth.tar", "r-50-100ep.pth.tar")),
    "pcl": ("PCL", ()),
    "swav": ("SwAV", ("swav_800ep_pretrain.pth.tar",)),
    "deepcluster-v2": ("DeepCluster-v2", ("deepclusterv2_800ep_pretrain.pth.tar",)),
    "sela-v2": ("SeLa-v2", ("selav2_400ep_pretrain.pth.tar",)),
    "simclr": ("SimCLR", ()),
    "pirl": ("PIRL", ()),
    "npid": ("NPID / InsDis", ()),
    # Barlow Twins and VICReg both publish "resnet50.pth": too ambiguous to pick from a cache.
    "barlow-twins": ("Barlow Twins", ()),
    "vicreg": ("VICReg", ()),
    "dino": ("DINO", ("dino_resnet50_pretrain.pth",)),
    "byol": ("BYOL", ()),
    "supervised": ("supervised ImageNet-1k (torchvision)",
                   ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth")),
}
DEFAULT_TAG = "moco-v2"


@dataclass(frozen=True)
class ResNetArch:
    """timm ResNet with bottleneck blocks: blocks per stage, stage widths (x4 out), input size."""

    blocks: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    size: int = 224


RESNET50 = ResNetArch()
TINY = ResNetArch(blocks=(2, 2, 1, 1), widths=(8, 16, 32, 64), size=64)


def layers_for(arch: ResNetArch) -> list[LayerInfo]:
    """Stem (after the first ReLU), every stage and block, and the global-average-pooled vector."""
    return in_order([("stem", "act1", "stem", dict(layout="NCHW", channels=64, stride=2))]
                    + resnet_stage_rows(arch.blocks, arch.widths)
                    + [("pool", "global_pool", "embedding",
                        dict(layout="NC", channels=4 * arch.widths[-1]))])


def _cached(tag: str) -> list[CachedWeights]:
    """Where a method's weights may already be: torch hub's cache by published file name, and
    for `supervised` also timm's copy in the Hugging Face cache."""
    files = METHODS[tag][1]
    hub = [CachedWeights("timm/resnet50.tv_in1k")] if tag == "supervised" else []
    return hub + ([CachedWeights(files=files)] if files else [])


def _flat_state(checkpoint: Any, where: str) -> tuple[dict[str, Any], str]:
    """The flat state dict inside a checkpoint, and 'VISSL trunk' when it came from one."""
    from zoo.errors import WeightsError
    from zoo.model.weights import unwrap_checkpoint

    if isinstance(checkpoint, dict) and "classy_state_dict" in checkpoint:
        try:
            return checkpoint["classy_state_dict"]["base_model"]["model"]["trunk"], "VISSL trunk"
        except (KeyError, TypeError):
            raise WeightsError(f"{where}: VISSL checkpoint without "
                               "classy_state_dict.base_model.model.trunk") from None
    # MoCo, mmselfsup, solo-learn: `state_dict`; PyContrast: `model` (never its `model_ema`)
    return unwrap_checkpoint(checkpoint, where), ""


def backbone_state(checkpoint: Any, where: str) -> tuple[dict[str, Any], str]:
    """The torchvision-keyed backbone weights inside a published checkpoint, and its layout."""
    from zoo.errors import WeightsError

    state, container = _flat_state(checkpoint, where)
    for name, prefix in FORMATS:
        if f"{prefix}conv1.weight" in state:
            backbone = {k[len(prefix):]: v for k, v in state.items()
                        if k.startswith(prefix) and not k[len(prefix):].startswith(HEADS)}
            return backbone, f"{container or name} (keys '{prefix}...')"
    raise WeightsError(f"{where}: no ResNet-50 backbone (no conv1.weight under any known prefix: "
                       f"{', '.join(repr(p) for _, p in FORMATS)}); its keys: {list(state)[:6]}")


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str,
          **options: Any) -> Any:
    """timm resnet50 (no classifier); weights from a published SSL checkpoint or random init."""
    import timm

    opts = load_options(spec, options)
    arch = TINY if opts.tiny else RESNET50
    source = find_weights(spec, weights, random_init, opts, _cached(spec.tag),
                          f"a {METHODS[spec.tag][0]} ResNet-50 checkpoint in any published "
                          "layout: MoCo, SwAV, VISSL, mmselfsup, solo-learn, PyContrast, "
                          "torchvision")
    # zero_init_last=False: torchvision's init (the SSL methods' own); timm's default zeroes each
    # block's last BN, which makes random-init blocks exact copies of their inputs.
    module = build_seeded(lambda: timm.create_model(
        "resnet50", pretrained=False, num_classes=0, layers=arch.blocks, channels=arch.widths,
        zero_init_last=False))
    if source.path is not None:
        file = source.file()
        state, layout = backbone_state(source.read(), str(file))
        load_into(module, state, f"{file} (detected: {layout})")
        source = source.detected(layout)
    input = opts.input(replace(INPUT, size=arch.size) if opts.tiny else INPUT)
    return wrap_model(spec, module, layers_for(arch), source, input, device, tiny=opts.tiny)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    layers = functools.partial(layers_for, RESNET50)
    for tag, (method, _files) in METHODS.items():
        where = "; ".join(c.describe() for c in _cached(tag)) or "--weights PATH only"
        register(ModelSpec("resnet-ssl", "resnet50", _load, layers, tag=tag, input=INPUT,
                           weights=where, default=tag == DEFAULT_TAG, sources=tuple(_cached(tag)),
                           description=f"ResNet-50, {method} weights"))
