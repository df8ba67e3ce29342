"""`dinov2`: DINOv2 ViT-B/14 (timm), with 4 registers by default; every block's tokens.

Built at 224 px (a 16x16 patch grid; the 518 px checkpoints' position embeddings are resampled by
timm on load). Prefix tokens: class + 4 registers (reg4) or class only.
"""

from __future__ import annotations

from collections.abc import Callable

from zoo import InputConfig, ModelSpec, hookimpl
from zoo.plugins._hf import ViTArch, vit_spec
from zoo.weights import CachedWeights

INPUT = InputConfig(size=224, interpolation="bicubic")  # ImageNet mean/std, as DINOv2 trains
VIT_B14_REG4 = ViTArch("vit_base_patch14_reg4_dinov2", dim=768, depth=12, heads=12, patch=14,
                       size=224, prefix_tokens=5)
VIT_B14 = ViTArch("vit_base_patch14_dinov2", dim=768, depth=12, heads=12, patch=14, size=224,
                  prefix_tokens=1)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(vit_spec(
        "dinov2", "vitb14-reg4", "lvd142m", VIT_B14_REG4, INPUT, default=True,
        cached=[CachedWeights("timm/vit_base_patch14_reg4_dinov2.lvd142m"),
                CachedWeights(files=("dinov2_vitb14_reg4_pretrain.pth",))],
        description="DINOv2 ViT-B/14 with 4 registers (LVD-142M), 224 px, 5 prefix tokens"))
    register(vit_spec(
        "dinov2", "vitb14", "lvd142m", VIT_B14, INPUT,
        cached=[CachedWeights("timm/vit_base_patch14_dinov2.lvd142m"),
                CachedWeights(files=("dinov2_vitb14_pretrain.pth",))],
        description="DINOv2 ViT-B/14 without registers (LVD-142M), 224 px"))
