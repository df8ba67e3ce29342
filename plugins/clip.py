"""`clip`: the image tower of OpenAI-style CLIP models (open_clip): ViT-B/16 (default) and RN50.

ViT layers are token sequences (N, 1 + grid, C) with the class token first (open_clip's resblocks
are batch-first since 2.26); the final embedding is the projected image vector CLIP compares with
text. OpenAI weights use QuickGELU, LAION weights plain GELU: the tag decides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl
from zoo.plugins._hf import Row, in_order, reject_options, resnet_stage_rows, wrap_model
from zoo.weights import CachedWeights

INPUT = InputConfig(size=224, mean=(0.48145466, 0.4578275, 0.40821073),
                    std=(0.26862954, 0.26130258, 0.27577711), interpolation="bicubic")
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
ACCEPTS = "an open_clip state dict (.pt/.bin/.safetensors) or a folder holding one"


@dataclass(frozen=True)
class ClipArch:
    """An open_clip model's image tower: `blocks` is the ViT depth, or blocks per ResNet stage."""

    name: str
    embed_dim: int
    width: int
    blocks: int | tuple[int, ...]
    patch: int | None = None  # None: a ModifiedResNet
    size: int = 224

    def tiny(self) -> ClipArch:
        """Same tower type, narrow and shallow, 2x2 final grid (for tests)."""
        if self.patch is None:
            return replace(self, embed_dim=16, width=8, blocks=(2, 1, 1, 1), size=64)
        return replace(self, embed_dim=16, width=32, blocks=2, size=2 * self.patch)

    def open_clip_config(self) -> dict[str, Any]:
        """The CLIP constructor arguments of this (reduced) arch, with a minimal text tower."""
        vision = dict(image_size=self.size, layers=self.blocks, width=self.width)
        if self.patch is not None:
            vision.update(patch_size=self.patch, head_width=16)
        return dict(embed_dim=self.embed_dim, vision_cfg=vision,
                    text_cfg=dict(context_length=8, vocab_size=64, width=16, heads=2, layers=1))


VIT_B16 = ClipArch("ViT-B-16", embed_dim=512, width=768, blocks=12, patch=16)
RN50 = ClipArch("RN50", embed_dim=1024, width=64, blocks=(3, 4, 6, 3))
# (arch, tag): Hugging Face repo of the open_clip weights, QuickGELU?
VARIANTS = {
    (VIT_B16, "openai"): ("timm/vit_base_patch16_clip_224.openai", True),
    (VIT_B16, "laion2b_s34b_b88k"): ("laion/CLIP-ViT-B-16-laion2B-s34B-b88K", False),
    (RN50, "openai"): ("timm/resnet50_clip.openai", True),
}


def layers_for(arch: ClipArch) -> list[LayerInfo]:
    """ViT: tokens into the blocks, every block, the final norm. ResNet: stem, stages and blocks.
    Both end with the projected image embedding (the tower's output)."""
    if arch.patch is None:
        rows: list[Row] = [("stem", "avgpool", "stem",
                            dict(layout="NCHW", channels=arch.width, stride=4))]
        rows += resnet_stage_rows(arch.blocks, [arch.width * 2 ** i for i in range(4)])
        pool = "attnpool"
    else:
        tokens = dict(layout="NLC", channels=arch.width, stride=arch.patch, prefix_tokens=1)
        rows = ([("embed", "ln_pre", "stem", tokens)]
                + [(f"block{i}", f"transformer.resblocks.{i}", "encoder", tokens)
                   for i in range(arch.blocks)]
                + [("norm", "ln_post", "encoder", tokens)])
        pool = ""  # the tower itself: pooled class token @ proj
    rows.append(("embedding", pool, "embedding", dict(layout="NC", channels=arch.embed_dim)))
    return in_order(rows)


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str, *,
          arch: ClipArch, tiny: bool = False, **unknown: Any) -> Any:
    """Build CLIP, load a full CLIP state dict (or init randomly), keep the image tower."""
    import open_clip

    from zoo.errors import WeightsError
    from zoo.weights import build_seeded, resolve_weights

    reject_options(spec, unknown, ("tiny",))
    repo, quick_gelu = VARIANTS[(arch, spec.tag)]
    source = resolve_weights(spec.id, weights, random_init,
                             [CachedWeights(repo, OPEN_CLIP_FILES)], ACCEPTS)
    built = arch.tiny() if tiny else arch
    config = built.open_clip_config() if tiny else open_clip.get_model_config(arch.name)
    model = build_seeded(lambda: open_clip.CLIP(**{**config, "quick_gelu": quick_gelu}))
    if source.path is not None:
        file = source.file(OPEN_CLIP_FILES)
        try:
            missing, unexpected = open_clip.load_checkpoint(model, str(file), strict=False)
        except Exception as exc:  # noqa: BLE001 - reader or shape failures mean a wrong file
            raise WeightsError(f"{file} does not fit {spec.id}: "
                               f"{' '.join(str(exc).split())[:400]}") from None
        if missing or unexpected:
            raise WeightsError(f"{file} does not fit {spec.id}: missing {len(missing)} keys "
                               f"{missing[:6]}, unexpected {len(unexpected)} {unexpected[:6]}")
    return wrap_model(spec, model.visual, layers_for(built), source, size=built.size, tiny=tiny,
                      device=device)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for (arch, tag), (repo, quick_gelu) in VARIANTS.items():
        register(ModelSpec(
            "clip", arch.name, functools.partial(_load, arch=arch),
            functools.partial(layers_for, arch), tag=tag, input=INPUT,
            weights=CachedWeights(repo, OPEN_CLIP_FILES).describe(),
            default=(arch, tag) == (VIT_B16, "openai"),
            description=f"CLIP {arch.name} image tower, {tag} weights"
                        f"{' (QuickGELU)' if quick_gelu else ''}, 224 px"))
