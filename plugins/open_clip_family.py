"""`open_clip/<arch>[.<pretrained>]`: any open_clip model's image tower, by its own API.

Layers: every intermediate of `visual.forward_intermediates` (ViT `resblocks.<i>` as NLC with the
class token first, where the tower has one; ResNet/ConvNeXt towers `stage<i>` as NCHW maps), then
`embedding`, the image embedding (`encode_image`, unnormalised). Preprocessing: the model's
`preprocess_cfg` with the pretrained tag's mean/std/interpolation/resize mode, run by open_clip's
`image_transform`. Weights: the tag's Hugging Face cache entry (open_clip_model.safetensors or
open_clip_pytorch_model.bin), or --weights, read safely and loaded exactly; never downloaded.
The tag's `quick_gelu` setting is applied at build, as open_clip's factory does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zoo import hookimpl
from zoo.errors import ZooError
from zoo.plugin import CachedWeights, find_weights, load_into, load_options
from zoo.plugins._generic import (
    PlanRow,
    arch_and_tag,
    layers_without_weights,
    load_index,
    make_model,
    search_index,
    seeded,
)
from zoo.registry.families import ModelFamily
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _build_index() -> dict[str, Any]:
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    pretrained = {}
    for arch, tag in open_clip.list_pretrained():
        cfg = get_pretrained_cfg(arch, tag)
        pretrained[f"{arch}.{tag}"] = {"hub": cfg.get("hf_hub", "").strip("/"),
                                       "quick_gelu": bool(cfg.get("quick_gelu")),
                                       **{k: cfg[k] for k in ("mean", "std", "interpolation",
                                                              "resize_mode") if k in cfg}}
    return {"archs": open_clip.list_models(), "pretrained": pretrained}


def index() -> dict[str, Any]:
    """open_clip's architectures and pretrained tags (hub id, preprocessing) when installed."""
    return load_index("open_clip", "open_clip_torch", _build_index)


def search(pattern: str) -> list[dict[str, Any]]:
    """`open_clip/<arch>` and `open_clip/<arch>.<tag>` ids matching `pattern`."""
    return search_index("open_clip", index(), pattern, "open_clip architecture (--random-init)")


def resolve(rest: str) -> ModelSpec:
    """The spec of `open_clip/<arch>[.<tag>]`."""
    idx = index()
    arch, tag = arch_and_tag("open_clip", idx, rest)
    cfg = idx["pretrained"].get(f"{arch}.{tag}", {}) if tag else {}
    build = _builder(arch, cfg)
    input = _input(build, cfg)

    def layers() -> list[LayerInfo]:
        return layers_without_weights(lambda: build(), plan, extract, input.size)

    cached = (CachedWeights(cfg["hub"], files=FILES),) if cfg.get("hub") else ()
    return ModelSpec("open_clip", arch, _loader(build), layers, tag=tag, input=input,
                     weights=f"open_clip {arch} {tag}" if tag else "none (random init)",
                     description=f"open_clip {arch} image tower" + (f" ({tag})" if tag else ""),
                     sources=cached)


def _builder(arch: str, cfg: dict[str, Any]) -> Callable[[], Any]:
    def build() -> Any:
        import logging

        import open_clip
        import torch

        device = "meta" if torch.get_default_device().type == "meta" else "cpu"
        logging.disable(logging.WARNING)  # "No pretrained weights loaded": zoo loads them
        try:
            return open_clip.create_model(arch, pretrained=None, device=device,
                                          force_quick_gelu=cfg.get("quick_gelu", False))
        finally:
            logging.disable(logging.NOTSET)

    return build


def _input(build: Callable[[], Any], cfg: dict[str, Any]) -> InputConfig:
    """The model's preprocess_cfg with the tag's own values (open_clip's factory merge)."""
    import open_clip
    import torch

    with torch.device("meta"):
        pp = {**open_clip.get_model_preprocess_cfg(build()),
              **{k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}}
    size = pp["size"] if isinstance(pp["size"], int) else pp["size"][0]
    if pp.get("resize_mode", "shortest") not in ("shortest", "squash"):
        raise ZooError(f"open_clip resize mode {pp['resize_mode']!r} is not supported by zoo")
    return InputConfig(size=int(size), mean=tuple(pp["mean"]), std=tuple(pp["std"]),
                       interpolation=pp.get("interpolation", "bicubic"),
                       resize=pp.get("resize_mode", "shortest"), library="open_clip")


def _prefix(visual: Any) -> int:
    """Class/register tokens of the image tower, from its own attributes."""
    if hasattr(visual, "trunk"):  # a timm trunk
        return int(getattr(visual.trunk, "num_prefix_tokens", 0))
    if getattr(visual, "class_embedding", None) is not None:
        return 1
    return 0


def _tokens(visual: Any) -> bool:
    return hasattr(visual, "transformer") or hasattr(getattr(visual, "trunk", None),
                                                     "num_prefix_tokens")


def plan(model: Any) -> list[PlanRow]:
    """The intermediates of the image tower (counted by its own block/stage lists), then the
    image embedding."""
    visual = model.visual
    tokens = _tokens(visual)
    if tokens and hasattr(visual, "transformer"):
        n = len(visual.transformer.resblocks)
        rows = [PlanRow(f"resblocks.{i}", f"visual.transformer.resblocks.{i}", "encoder",
                        prefix=_prefix(visual)) for i in range(n)]
    elif tokens:
        n = len(visual.trunk.blocks)
        rows = [PlanRow(f"blocks.{i}", f"visual.trunk.blocks.{i}", "encoder",
                        prefix=_prefix(visual)) for i in range(n)]
    else:
        n = _stage_count(visual)
        rows = [PlanRow(f"stage{i}", "visual", "stem" if i == 0 else "encoder") for i in range(n)]
    return rows + [PlanRow("embedding", "visual", "embedding")]


def _stage_count(visual: Any) -> int:
    if hasattr(visual, "trunk") and hasattr(visual.trunk, "feature_info"):
        return len(visual.trunk.feature_info)
    return 5  # ModifiedResNet: stem + layer1..4, as its forward_intermediates takes them


def extract(model: Any, x: Any, rows: Sequence[PlanRow]) -> dict[str, Any]:
    """`visual.forward_intermediates` for the blocks, `encode_image` for the embedding."""
    import torch

    order = {r.name: i for i, r in enumerate(plan(model)[:-1])}
    inter = [r for r in rows if r.name in order]
    tokens = _tokens(model.visual)
    out: dict[str, Any] = {}
    if inter:
        res = model.visual.forward_intermediates(
            x, indices=[order[r.name] for r in inter], intermediates_only=True,
            output_fmt="NCHW", output_extra_tokens=tokens)
        prefixes = res.get("image_intermediates_prefix") or [None] * len(inter)
        for r, t, p in zip(inter, res["image_intermediates"], prefixes):
            if tokens:
                t = t.flatten(2).transpose(1, 2)
                out[r.name] = torch.cat([p, t], 1) if p is not None else t
            else:
                out[r.name] = t.permute(0, 2, 3, 1)
    if any(r.name == "embedding" for r in rows):
        out["embedding"] = model.encode_image(x)
    return out


def upstream(model: Any, x: Any, rows: Sequence[PlanRow]) -> dict[str, Any]:
    """open_clip's model-level `forward_intermediates` (NLC tokens, extra tokens apart) and
    `image_features`: the reference of `zoo check`."""
    import torch

    inter = [r for r in rows if r.name != "embedding"]
    tokens = _tokens(model.visual)
    res = model.forward_intermediates(image=x, image_indices=len(inter), normalize=False,
                                      image_output_fmt="NLC" if tokens else "NCHW",
                                      image_output_extra_tokens=tokens)
    prefixes = res.get("image_intermediates_prefix") or [None] * len(inter)
    out = {}
    for r, t, p in zip(inter, res["image_intermediates"], prefixes):
        out[r.name] = (torch.cat([p, t], 1) if p is not None else t) if tokens \
            else t.permute(0, 2, 3, 1)
    out["embedding"] = res["image_features"]
    return out


def _loader(build: Callable[[], Any]) -> Callable[..., Any]:
    def load(spec: ModelSpec, weights: str | None = None, random_init: bool = False,
             device: str = "cpu", **options: Any) -> Any:
        opts = load_options(spec, options)
        if opts.size is not None and opts.size != spec.input.size:
            raise ZooError(f"{spec.id}: open_clip towers are built for {spec.input.size} px; "
                           "size cannot be changed")
        source = find_weights(spec, weights, random_init, opts, spec.sources,
                              accepts="an open_clip state dict")
        model = seeded(build)
        if not source.random_init:
            load_into(model, source.read(FILES), str(source.path))
            source = source.detected("open_clip state dict")
        rows = plan(model)
        prov = {"library": "open_clip", "pretrained": spec.tag}
        return make_model(spec, model, spec.layers(), rows, extract,
                          "visual.forward_intermediates", source, opts.input(spec), device,
                          prov, upstream=upstream)

    return load


@hookimpl
def register_model_families(register: Callable[[ModelFamily], None]) -> None:
    register(ModelFamily("open_clip", resolve, search,
                         description="any open_clip architecture[.pretrained tag]",
                         example="open_clip/ViT-B-32.openai"))
