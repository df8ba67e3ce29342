"""`mae`: the MAE ViT-B/16 encoder (timm), deterministic: no random masking, no token shuffling.

timm's ViT runs every patch in order, so extraction sees the whole image; the MAE decoder and
mask token in a checkpoint are not part of the encoder and are dropped on load.
"""

from __future__ import annotations

from collections.abc import Callable

from zoo import InputConfig, ModelSpec, hookimpl
from zoo.plugins._hf import ViTArch, vit_spec
from zoo.weights import CachedWeights

INPUT = InputConfig(size=224, interpolation="bicubic")  # ImageNet mean/std, as MAE trains
VIT_B16 = ViTArch("vit_base_patch16_224", dim=768, depth=12, heads=12, patch=16, size=224,
                  prefix_tokens=1)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(vit_spec(
        "mae", "vitb16", "in1k", VIT_B16, INPUT, default=True,
        cached=[CachedWeights("timm/vit_base_patch16_224.mae"),
                CachedWeights(files=("mae_pretrain_vit_base.pth",))],
        drop_prefixes=("decoder", "mask_token"),
        description="MAE ViT-B/16 encoder pre-trained on ImageNet-1k, 224 px, no masking"))
