"""`clip`: the image tower of OpenAI-style CLIP models (open_clip): ViT-B/16 (default) and RN50.

ViT layers are token sequences (N, 1 + grid, C) with the class token first (open_clip's resblocks
are batch-first since 2.26); the final embedding is the projected image vector CLIP compares with
text. OpenAI weights use QuickGELU, LAION weights plain GELU: the tag decides. At another input
size, position embeddings are resized once at load as each upstream does: open_clip's
`resize_pos_embed` (bicubic, antialiased) for open_clip and OpenAI files, transformers' CLIP
`interpolate_pos_encoding` (bicubic, no antialias) for transformers folders.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl
from zoo.errors import WeightsError
from zoo.plugin import (
    CachedWeights,
    Row,
    WeightSource,
    build_seeded,
    find_weights,
    in_order,
    load_into,
    load_options,
    resnet_stage_rows,
    wrap_model,
)

# open_clip's preprocess config for OpenAI-style CLIP: Resize 224 + CenterCrop 224, bicubic
INPUT = InputConfig(size=224, mean=(0.48145466, 0.4578275, 0.40821073),
                    std=(0.26862954, 0.26130258, 0.27577711), interpolation="bicubic",
                    library="open_clip")
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP, TORCHSCRIPT, TRANSFORMERS = "open_clip", "OpenAI TorchScript", "transformers"
# constants a TorchScript CLIP keeps in its state dict, not weights (open_clip drops them too)
SCRIPT_CONSTANTS = ("input_resolution", "context_length", "vocab_size", "attn_mask")
ACCEPTS = ("an open_clip state dict (.pt/.bin/.safetensors) or a folder holding one, an OpenAI "
           "TorchScript file (~/.cache/clip/*.pt), or a transformers CLIP folder")


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
# OpenAI weights in other caches: transformers' hub repo, OpenAI's own TorchScript download
HF_REPOS = {VIT_B16: "openai/clip-vit-base-patch16"}
OPENAI_CACHE = {VIT_B16: "~/.cache/clip/ViT-B-16.pt", RN50: "~/.cache/clip/RN50.pt"}


def cached_for(arch: ClipArch, tag: str) -> list[CachedWeights]:
    """Where the weights may already be: open_clip's HF repo; for OpenAI weights also
    transformers' HF repo and OpenAI's own TorchScript cache."""
    cached = [CachedWeights(VARIANTS[(arch, tag)][0], OPEN_CLIP_FILES, format=OPEN_CLIP)]
    if tag == "openai":
        cached += ([CachedWeights(HF_REPOS[arch], folder=True, format=TRANSFORMERS)]
                   if arch in HF_REPOS else [])
        cached.append(CachedWeights(path=OPENAI_CACHE[arch], format=TORCHSCRIPT))
    return cached


def input_for(fmt: str, path: Path | None = None) -> InputConfig:
    """The upstream transform of weights in format `fmt`: a transformers folder's processor
    (read from `path`), else open_clip's preprocess."""
    from zoo.model.transforms import processor_input

    return processor_input(path) if fmt == TRANSFORMERS else INPUT


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
          arch: ClipArch, **options: Any) -> Any:
    """Build CLIP and load an open_clip state dict, an OpenAI TorchScript file or a transformers
    CLIPVisionModel(WithProjection) folder (or init randomly); keep the image tower."""
    import open_clip
    from open_clip.model import resize_pos_embed

    opts = load_options(spec, options)
    quick_gelu = VARIANTS[(arch, spec.tag)][1]
    source = find_weights(spec, weights, random_init, opts, cached_for(arch, spec.tag), ACCEPTS)
    built = arch.tiny() if opts.tiny else arch
    fmt, state, input = OPEN_CLIP, None, INPUT
    if source.path is not None:
        fmt, state, input = _read(source, spec)
    if opts.tiny and fmt != TRANSFORMERS:  # a processor folder brings its own size
        input = replace(input, size=built.size)
    input = opts.input(input)
    built = replace(built, size=input.size)
    config = built.open_clip_config() if opts.tiny else open_clip.get_model_config(arch.name)
    config = {**config, "vision_cfg": {**config["vision_cfg"], "image_size": built.size}}
    model = build_seeded(lambda: open_clip.CLIP(**{**config, "quick_gelu": quick_gelu}))
    layers = layers_for(built)
    if state is not None:
        resize_pos_embed(state, model, antialias=fmt != TRANSFORMERS)
        if fmt == TRANSFORMERS:
            if "visual.proj" not in state:  # CLIPVisionModel: the pooled, unprojected output
                model.visual.proj = None
                layers = layers[:-1] + [replace(layers[-1], channels=built.width)]
            load_into(model.visual, {k.removeprefix("visual."): v for k, v in state.items()},
                      f"{source.path} (converted from transformers)")
        else:
            load_into(model, state, f"{source.path} ({fmt})")
    return wrap_model(spec, model.visual, layers, source.detected(fmt) if state else source,
                      input, device, tiny=opts.tiny)


def _read(source: WeightSource, spec: ModelSpec) -> tuple[str, dict[str, Any], InputConfig]:
    """(format, open_clip-keyed state dict, input transform) of a file or folder."""
    from zoo.model.weights import is_torchscript

    path = Path(source.path)
    if path.is_dir() and (path / "config.json").is_file() and not any(
            (path / f).is_file() for f in OPEN_CLIP_FILES):
        return TRANSFORMERS, _from_transformers(path, spec, source.trust), input_for(
            TRANSFORMERS, path)
    file = source.file(OPEN_CLIP_FILES)
    fmt = TORCHSCRIPT if is_torchscript(file) else OPEN_CLIP
    state = source.read(OPEN_CLIP_FILES)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # open_clip training checkpoints
    if not isinstance(state, dict):
        raise WeightsError(f"{file} holds a {type(state).__name__}, not a state dict")
    return fmt, {k.removeprefix("module."): v for k, v in state.items()
                 if k not in SCRIPT_CONSTANTS}, INPUT


# transformers CLIP vision tower -> open_clip `visual.` keys, by prefix
HF_NAMES = (("vision_model.embeddings.class_embedding", "class_embedding"),
            ("vision_model.embeddings.patch_embedding.", "conv1."),
            ("vision_model.embeddings.position_embedding.weight", "positional_embedding"),
            ("vision_model.pre_layrnorm.", "ln_pre."), ("vision_model.post_layernorm.", "ln_post."))
HF_BLOCK = (("self_attn.out_proj.", "attn.out_proj."), ("layer_norm1.", "ln_1."),
            ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."))


def _from_transformers(folder: Path, spec: ModelSpec, trust: bool) -> dict[str, Any]:
    """Read a CLIPModel (as on the hub) or CLIPVisionModel(WithProjection) folder with
    transformers (offline; pickled weights read by zoo, `trust`: fully) and rename its image
    tower to open_clip's keys (q, k, v joined into in_proj)."""
    import torch
    import transformers

    from zoo.model.pretrained import load_pretrained

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}: config.json is not readable JSON ({exc})") from None
    name = ("CLIPModel" if config.get("model_type") == "clip" else "CLIPVisionModel"
            if config.get("architectures") == ["CLIPVisionModel"]
            else "CLIPVisionModelWithProjection")
    model = load_pretrained(getattr(transformers, name).from_pretrained, folder, trust=trust,
                            what=f"{folder} as {name}")
    act = getattr(model.config, "vision_config", model.config).hidden_act
    if act != "quick_gelu" and spec.tag == "openai":
        raise WeightsError(f"{folder} uses {act}; {spec.id} is QuickGELU")
    out: dict[str, Any] = {}
    qkv: dict[str, dict[str, Any]] = {}
    for key, value in model.state_dict().items():
        if name == "CLIPModel" and not key.startswith(("vision_model.", "visual_projection.")):
            continue  # the text tower
        key = key if key.startswith("visual_projection.") else "vision_model." + key.removeprefix(
            "vision_model.")  # CLIPVisionModel's keys lack the prefix in transformers 5
        block = re.match(r"vision_model\.encoder\.layers\.(\d+)\.(.+)", key)
        if key == "visual_projection.weight":
            out["visual.proj"] = value.T.contiguous()
        elif block is None:
            out["visual." + _rename(key, HF_NAMES)] = value
        elif (part := re.match(r"self_attn\.([qkv])_proj\.(\w+)", block.group(2))):
            qkv.setdefault(f"visual.transformer.resblocks.{block.group(1)}.attn.in_proj_"
                           f"{part.group(2)}", {})[part.group(1)] = value
        else:
            out[f"visual.transformer.resblocks.{block.group(1)}."
                + _rename(block.group(2), HF_BLOCK)] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def _rename(key: str, table: tuple[tuple[str, str], ...]) -> str:
    return next((new + key[len(old):] for old, new in table if key.startswith(old)), key)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for (arch, tag), (_, quick_gelu) in VARIANTS.items():
        register(ModelSpec(
            "clip", arch.name, functools.partial(_load, arch=arch),
            functools.partial(layers_for, arch), tag=tag, input=INPUT,
            weights="; ".join(c.describe() for c in cached_for(arch, tag)),
            sources=tuple(cached_for(arch, tag)), input_for=input_for,
            default=(arch, tag) == (VIT_B16, "openai"),
            description=f"CLIP {arch.name} image tower, {tag} weights"
                        f"{' (QuickGELU)' if quick_gelu else ''}, 224 px"))
