"""`mae`: the MAE ViT-B/16 encoder (timm), deterministic: no random masking, no token shuffling.

timm's ViT runs every patch in order, so extraction sees the whole image; the MAE decoder and
mask token in a checkpoint are not part of the encoder and are dropped on load. Preprocessing
follows the weights: timm's data config (crop_pct 0.9, bicubic) for timm weights, MAE's own
evaluation transform (Resize 256 / CenterCrop 224, bicubic) for the original release
(`mae_pretrain_vit_base.pth`, `{'model': encoder}`) and its training checkpoints, the folder's
image processor for a transformers ViTMAEModel folder. At another input size, position
embeddings are resized as each upstream does: timm's antialiased resampling for timm weights,
plain bicubic to the new grid (MAE's `interpolate_pos_embed`, transformers' ViTMAE) otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from zoo import InputConfig, ModelSpec, hookimpl
from zoo.plugin import CachedWeights
from zoo.plugins._vit import ORIGINAL, TIMM, TRANSFORMERS, PosInterp, ViTArch, ViTFamily, vit_spec

MAE = ViTFamily(
    timm_input=InputConfig(size=224, interpolation="bicubic", crop_pct=0.9, library="timm"),
    original_input=InputConfig(size=224, interpolation="bicubic", crop_pct=0.875),
    transformers_types=("vit_mae",), original_pos=PosInterp(), transformers_pos=PosInterp(),
    drop_prefixes=("decoder", "mask_token"))
VIT_B16 = ViTArch("vit_base_patch16_224", dim=768, depth=12, heads=12, patch=16, size=224,
                  native=224, prefix_tokens=1)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(vit_spec(
        "mae", "vitb16", "in1k", VIT_B16, MAE, default=True,
        cached=[CachedWeights("timm/vit_base_patch16_224.mae", format=TIMM),
                CachedWeights("facebook/vit-mae-base", folder=True, format=TRANSFORMERS),
                CachedWeights(files=("mae_pretrain_vit_base.pth",), format=ORIGINAL)],
        description="MAE ViT-B/16 encoder pre-trained on ImageNet-1k, 224 px, no masking"))
