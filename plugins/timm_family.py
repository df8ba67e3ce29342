"""`timm/<name>[.<tag>]`: any timm architecture, its layers from timm's own feature metadata.

Layers: one per `feature_info` entry (ViT/EVA/BEiT blocks, ConvNeXt/ResNet/Swin stages, the
stem where timm lists it), named by its module path, then `pre_logits`, the pooled embedding
(`forward_head(..., pre_logits=True)`), where the model has timm's classification interface
(encoder-only towers such as the Gemma 4 and Qwen3 ViT encoders have none). Features come
from `forward_intermediates` (NLC with the model's `num_prefix_tokens` class/register/
distillation tokens first, or NCHW maps); a model without it runs forward hooks on its
`feature_info` modules. Preprocessing: `resolve_data_config`
on the tag's `pretrained_cfg`, run by timm's `create_transform`. Weights: the tag's HF hub cache
entry (`timm/<name>.<tag>`), torch hub's checkpoint file, or --weights, loaded by timm's own
`load_pretrained` (its filter resamples position embeddings); never downloaded.
Build option `model_args` (a dict): keyword arguments for timm.create_model (a smaller
`embed_dim`, `depths`, `dynamic_img_size=True`, ...).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

from zoo import hookimpl
from zoo.errors import ZooError
from zoo.plugin import CachedWeights, find_weights, load_options
from zoo.plugins._generic import (
    PlanRow,
    arch_and_tag,
    channels_last,
    declare_layers,
    hook_features,
    layers_without_weights,
    load_index,
    make_model,
    search_index,
    seeded,
)
from zoo.registry.families import ModelFamily
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

STEM_MODULES = ("stem", "act1", "bn1", "conv1", "conv_stem", "bn")


def _build_index() -> dict[str, Any]:
    import timm
    from timm.models import get_pretrained_cfg

    pretrained = {}
    for name in timm.list_pretrained():
        cfg = get_pretrained_cfg(name)
        pretrained[name] = {"hub": cfg.hf_hub_id or "",
                            "file": (cfg.url or "").rsplit("/", 1)[-1]}
    return {"archs": timm.list_models(), "pretrained": pretrained}


def index() -> dict[str, Any]:
    """timm's architectures and pretrained tags (hub id, torch hub file) for the installed timm."""
    return load_index("timm", "timm", _build_index)


def search(pattern: str) -> list[dict[str, Any]]:
    """`timm/<arch>` and `timm/<arch>.<tag>` ids matching `pattern`, with cached weights."""
    return search_index("timm", index(), pattern,
                        "timm architecture (default tag's weights, or --random-init)")


def resolve(rest: str) -> ModelSpec:
    """The spec of `timm/<arch>[.<tag>]` (an unknown name lists close ones)."""
    arch, tag = arch_and_tag("timm", index(), rest)
    cfg = _pretrained_cfg(arch, tag)
    cached = [CachedWeights(cfg["hf_hub_id"])] if cfg.get("hf_hub_id") else []
    if cfg.get("url"):
        cached.append(CachedWeights(files=(cfg["url"].rsplit("/", 1)[-1],)))
    input = _input(cfg)
    name = f"{arch}.{cfg['tag']}" if cfg.get("tag") else arch

    def layers() -> list[LayerInfo]:
        return layers_without_weights(lambda: _create(arch, input.size, input.size),
                                      lambda m: plan(m)[0], lambda m, x, r: extractor(m)[0](
                                          m, x, r), input.size)

    return ModelSpec("timm", arch, _loader(arch, cfg), layers, tag=tag, input=input,
                     weights=f"timm {name}" if cfg.get("tag") else "none published (random init)",
                     description=f"timm {type_name(arch)} ({name}), layers from feature_info",
                     sources=tuple(cached))


def _pretrained_cfg(arch: str, tag: str) -> dict[str, Any]:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    return cfg.to_dict() if cfg is not None else {}


def type_name(arch: str) -> str:
    """The module timm defines `arch` in (vision_transformer, convnext, ...)."""
    import timm

    return timm.models.model_entrypoint(arch).__module__.rsplit(".", 1)[-1]


def _input(cfg: dict[str, Any]) -> InputConfig:
    """timm's resolve_data_config on the tag's pretrained_cfg, as an InputConfig."""
    from timm.data import resolve_data_config

    data = resolve_data_config(pretrained_cfg=cfg)
    _, h, w = data["input_size"]
    if h != w:
        raise ZooError(f"timm input size {h}x{w} is not square; zoo's transforms are square "
                       "(pass size=N)")
    return InputConfig(size=int(h), mean=tuple(data["mean"]), std=tuple(data["std"]),
                       interpolation=data["interpolation"], crop_pct=float(data["crop_pct"]),
                       resize="squash" if data.get("crop_mode") == "squash" else "shortest",
                       library="timm")


def _create(arch: str, size: int, native: int, tiny: bool = False, **kwargs: Any) -> Any:
    """timm.create_model at input `size` (img_size passed where the model takes one) with
    `kwargs`; `tiny`: depth=2 where the architecture takes a depth (ViT, BEiT, EVA...; tests)."""
    import timm

    if tiny:
        try:
            return _create(arch, size, native, depth=2, **kwargs)
        except (TypeError, AssertionError, ValueError):  # no single depth argument, or one
            pass  # that means something else (RegNet's block count, PiT's per-stage list)
    if size != native:
        try:
            return timm.create_model(arch, img_size=size, **kwargs)
        except TypeError:  # CNNs take any size and no img_size argument
            pass
    return timm.create_model(arch, **kwargs)


def plan(model: Any) -> tuple[list[PlanRow], bool, bool]:
    """The layer plan from feature_info, whether forward_intermediates serves it, and whether
    it returns tokens (with prefix tokens) rather than maps."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ZooError(f"timm {type(model).__name__} has no feature_info; zoo cannot name its "
                       "layers (wrap it with zoo.wrap and name module paths)")
    api = hasattr(model, "forward_intermediates")
    tokens = api and "return_prefix_tokens" in inspect.signature(
        model.forward_intermediates).parameters
    prefix = int(getattr(model, "num_prefix_tokens", 0)) if tokens else 0
    rows = [PlanRow(f["module"], f["module"],
                    "stem" if f["module"].split(".")[0] in STEM_MODULES else "encoder",
                    prefix if tokens else 0) for f in info]
    if not _pools(model):  # encoder-only towers (Gemma 4, Qwen3, MobileNetV5 encoders)
        return rows, api, tokens
    head = model.get_classifier()
    head_path = next((n for n, m in model.named_modules() if m is head), "")
    return rows + [PlanRow("pre_logits", head_path, "embedding")], api, tokens


def _pools(model: Any) -> bool:
    """Whether the model has timm's classification interface, so `forward_head(x,
    pre_logits=True)` gives a pooled embedding (encoder-only towers raise there)."""
    head = getattr(model, "forward_head", None)
    return (hasattr(model, "get_classifier") and head is not None
            and "pre_logits" in inspect.signature(head).parameters)


def extractor(model: Any) -> tuple[Callable[..., dict[str, Any]], str]:
    """The extraction function for `model` and its path (forward_intermediates or hooks)."""
    rows, api, tokens = plan(model)
    order = {r.name: i for i, r in enumerate(r for r in rows if r.name != "pre_logits")}
    prefix = rows[0].prefix
    # the pooled embedding needs every block run: some models (Hiera) stop after the last
    # requested intermediate by default
    full = {"stop_early": False} if api and "stop_early" in inspect.signature(
        model.forward_intermediates).parameters else {}

    def run(module: Any, x: Any, wanted: Sequence[PlanRow]) -> dict[str, Any]:
        import torch

        inter = [r for r in wanted if r.name in order]
        head = any(r.name == "pre_logits" for r in wanted)
        out: dict[str, Any] = {}
        if api:
            # prefix tokens asked for only where there are some (timm 1.0.31's relpos ViT
            # fails on return_prefix_tokens without them)
            kw = dict(output_fmt="NLC", return_prefix_tokens=prefix > 0) if tokens else {}
            if head:
                kw.update(full)
            res = module.forward_intermediates(
                x, indices=[order[r.name] for r in inter] or [0], intermediates_only=not head,
                **kw)
            final, feats = res if head else (None, res)
            for r, t in zip(inter, feats):
                if isinstance(t, tuple):
                    t = torch.cat([t[1], t[0]], 1) if t[1] is not None else t[0]
                out[r.name] = channels_last(r, t)
        else:
            final = hook_features(module, inter, lambda: module.forward_features(x), out)
        if head:
            out["pre_logits"] = module.forward_head(final, pre_logits=True).flatten(1)
        return out

    return run, "forward_intermediates" if api else "feature_info hooks"


def upstream(module: Any, x: Any, rows: Sequence[PlanRow]) -> dict[str, Any] | None:
    """timm's forward_intermediates called with its defaults (NCHW maps; prefix tokens apart),
    laid out as zoo declares them: the independent reference of `zoo check`."""
    import torch

    _, api, tokens = plan(module)
    if not api:
        return None
    inter = [r for r in rows if r.name != "pre_logits"]
    kw = dict(return_prefix_tokens=True) if tokens and inter[0].prefix else {}
    feats = module.forward_intermediates(x, indices=len(inter), intermediates_only=True, **kw)
    out = {}
    for r, t in zip(inter, feats):
        if isinstance(t, tuple):
            patches = t[0].flatten(2).transpose(1, 2)
            out[r.name] = torch.cat([t[1], patches], 1) if t[1] is not None else patches
        else:  # NCHW maps: tokens without prefix come back on their grid too
            out[r.name] = t.flatten(2).transpose(1, 2) if tokens else t.permute(0, 2, 3, 1)
    return out


def _loader(arch: str, cfg: dict[str, Any]) -> Callable[..., Any]:
    def load(spec: ModelSpec, weights: str | None = None, random_init: bool = False,
             device: str = "cpu", **options: Any) -> Any:
        opts = load_options(spec, options, extra=("model_args",))
        args = _model_args(spec, opts.extra.get("model_args"))
        source = find_weights(spec, weights, random_init, opts, spec.sources,
                              accepts="a timm state dict (.safetensors, .pth, .bin)")
        input = opts.input(spec)
        native = spec.input.size
        try:
            if source.random_init:
                model = seeded(lambda: _create(arch, input.size, native, opts.tiny, **args))
            else:
                model = _create(arch, input.size, native, pretrained=True,
                                pretrained_cfg_overlay=dict(file=str(source.file())), **args)
        except TypeError as exc:
            if not args:
                raise
            raise ZooError(f"{spec.id}: timm.create_model does not take model_args "
                           f"{sorted(args)}: {exc}") from None
        if not source.random_init:
            source = source.detected("timm state dict")
        rows = plan(model)[0]
        run, path = extractor(model)
        layers = declare_layers(model.eval(), rows, run, input.size, device="cpu") \
            if input.size != native or opts.tiny or args else spec.layers()
        prov = {"library": "timm", "pretrained_cfg": {k: cfg.get(k) for k in (
            "architecture", "tag", "hf_hub_id", "license", "paper_ids", "url") if cfg.get(k)}}
        if args:
            prov["model_args"] = args
        variant = ":".join(v for v in ("tiny" if opts.tiny else "", "args-" + hashlib.sha256(
            json.dumps(args, sort_keys=True).encode()).hexdigest()[:12] if args else "") if v)
        return make_model(spec, model, layers, rows, run, path, source, input, device, prov,
                          variant=variant, upstream=upstream)

    return load


def _model_args(spec: ModelSpec, args: Any) -> dict[str, Any]:
    """The `model_args` build option checked: a dict of JSON-able create_model keywords."""
    if args is None:
        return {}
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise ZooError(f"{spec.id}: model_args={args!r} must be a dict of timm.create_model "
                       "keyword arguments, e.g. {'embed_dim': 192}")
    try:
        json.dumps(args)
    except TypeError as exc:
        raise ZooError(f"{spec.id}: model_args values must be numbers, strings, lists or "
                       f"dicts (they key the feature cache): {exc}") from None
    return dict(args)


@hookimpl
def register_model_families(register: Callable[[ModelFamily], None]) -> None:
    register(ModelFamily("timm", resolve, search,
                         description="any timm architecture[.pretrained tag]",
                         example="timm/convnext_tiny"))
