"""`dinov2`: DINOv2 ViT-B/14 (timm), with 4 registers by default; every block's tokens.

Input 224 px (a 16x16 patch grid) on the checkpoints' native 518 px (37x37) position embeddings,
interpolated at run time: without registers as the official hub model does (bicubic, offset
0.1, no antialias), with registers as the official and timm code do (bicubic, antialiased);
transformers folders as transformers does. Prefix tokens: class + 4 registers (reg4) or class.
Preprocessing follows the weights: timm's data config (Resize 224, crop_pct 1.0, bicubic) for
timm weights, DINOv2's own evaluation transform (Resize 256 / CenterCrop 224, bicubic) for the
original release, the folder's image processor for transformers folders.
"""

from __future__ import annotations

from collections.abc import Callable

from zoo import InputConfig, ModelSpec, hookimpl
from zoo.plugin import CachedWeights
from zoo.plugins._vit import ORIGINAL, TIMM, TRANSFORMERS, PosInterp, ViTArch, ViTFamily, vit_spec

REG4 = ViTFamily(
    timm_input=InputConfig(size=224, interpolation="bicubic", library="timm"),
    original_input=InputConfig(size=224, interpolation="bicubic", crop_pct=0.875),
    transformers_types=("dinov2_with_registers",))
NO_REG = ViTFamily(
    timm_input=REG4.timm_input, original_input=REG4.original_input,
    transformers_types=("dinov2",),
    pos=PosInterp(offset=0.1, antialias=False), original_pos=PosInterp(offset=0.1),
    transformers_pos=PosInterp())
VIT_B14_REG4 = ViTArch("vit_base_patch14_reg4_dinov2", dim=768, depth=12, heads=12, patch=14,
                       size=224, native=518, prefix_tokens=5)
VIT_B14 = ViTArch("vit_base_patch14_dinov2", dim=768, depth=12, heads=12, patch=14, size=224,
                  native=518, prefix_tokens=1)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(vit_spec(
        "dinov2", "vitb14-reg4", "lvd142m", VIT_B14_REG4, REG4, default=True,
        cached=[CachedWeights("timm/vit_base_patch14_reg4_dinov2.lvd142m", format=TIMM),
                CachedWeights("facebook/dinov2-with-registers-base", folder=True,
                              format=TRANSFORMERS),
                CachedWeights(files=("dinov2_vitb14_reg4_pretrain.pth",), format=ORIGINAL)],
        description="DINOv2 ViT-B/14 with 4 registers (LVD-142M), 224 px, 5 prefix tokens"))
    register(vit_spec(
        "dinov2", "vitb14", "lvd142m", VIT_B14, NO_REG,
        cached=[CachedWeights("timm/vit_base_patch14_dinov2.lvd142m", format=TIMM),
                CachedWeights("facebook/dinov2-base", folder=True, format=TRANSFORMERS),
                CachedWeights(files=("dinov2_vitb14_pretrain.pth",), format=ORIGINAL)],
        description="DINOv2 ViT-B/14 without registers (LVD-142M), 224 px"))
