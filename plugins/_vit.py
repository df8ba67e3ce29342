"""timm Vision Transformers shared by the DINOv2 and MAE families (one private helper module).

One network (timm's ViT, built at the checkpoint's native grid with run-time position embeddings)
reads three published formats, each with its own upstream preprocessing:
- timm weights (HF cache `timm/...`, a timm folder or file): timm's data config;
- the original release files (facebookresearch DINOv2 `*_pretrain.pth`; MAE's `{'model': ...}`
  files: `mae_pretrain_vit_base.pth`, training checkpoints; by layout and keys, else by the
  torch hub name they were found under): the original evaluation transform (Resize 256 /
  CenterCrop 224, bicubic);
- transformers folders (`facebook/dinov2-base`, `facebook/vit-mae-base`, ...), read by
  transformers itself and converted key by key: the folder's image processor.
Token features are (N, tokens, C) with the class (and register) tokens first; block outputs are
the residual stream before the final norm.
"""

from __future__ import annotations

import functools
import json
import math
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo.plugin import CachedWeights, find_weights, in_order, load_options, wrap_model
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

TIMM, ORIGINAL, TRANSFORMERS = "timm", "original release", "transformers"


@dataclass(frozen=True)
class PosInterp:
    """Run-time position-embedding interpolation (bicubic): the official DINOv2 uses a scale
    factor with `offset` 0.1 and no antialias; transformers' Dinov2Model the target size."""

    offset: float = 0.0
    antialias: bool = False


@dataclass(frozen=True)
class ViTArch:
    """A timm ViT as zoo builds it: the timm name, the numbers the layers need, the native grid
    (`native` px, the checkpoints' position embeddings) and the default input size."""

    timm_name: str
    dim: int
    depth: int
    heads: int
    patch: int
    size: int
    native: int
    prefix_tokens: int

    def tiny(self) -> ViTArch:
        """Same architecture, 32 wide, 2 blocks, a 3x3 input grid on a 5x5 native one (tests)."""
        return replace(self, dim=32, depth=2, heads=2, size=3 * self.patch,
                       native=5 * self.patch)


@dataclass(frozen=True)
class ViTFamily:
    """What differs between DINOv2 and MAE checkpoints: preprocessing and run-time position
    interpolation per format (None: timm's own, antialiased), transformers model types."""

    timm_input: InputConfig
    original_input: InputConfig
    transformers_types: tuple[str, ...]
    pos: PosInterp | None = None
    original_pos: PosInterp | None = None
    transformers_pos: PosInterp | None = None
    drop_prefixes: tuple[str, ...] = ()

    def input_for(self, fmt: str, path: Path | None = None) -> InputConfig:
        """The upstream transform of weights in format `fmt` (a transformers folder's
        processor, read from `path`)."""
        from zoo.model.transforms import processor_input

        if fmt == TRANSFORMERS:
            return processor_input(path)
        return self.original_input if fmt == ORIGINAL else self.timm_input


def vit_layers(arch: ViTArch) -> list[LayerInfo]:
    """Tokens entering the blocks, every block, the final norm, and the pooled class embedding."""
    tokens = dict(layout="NLC", channels=arch.dim, stride=arch.patch,
                  prefix_tokens=arch.prefix_tokens)
    return in_order([("embed", "norm_pre", "stem", tokens)]
                    + [(f"block{i}", f"blocks.{i}", "encoder", tokens) for i in range(arch.depth)]
                    + [("norm", "norm", "encoder", tokens),
                       ("embedding", "head", "embedding", dict(layout="NC", channels=arch.dim))])


def vit_spec(family: str, arch_name: str, tag: str, arch: ViTArch, kind: ViTFamily,
             cached: Sequence[CachedWeights], description: str,
             default: bool = False) -> ModelSpec:
    """A registered timm-ViT model; `cached` lists its sources in order of preference."""
    loader = functools.partial(load_vit, arch=arch, kind=kind, cached=tuple(cached))
    return ModelSpec(family, arch_name, loader, functools.partial(vit_layers, arch), tag=tag,
                     input=kind.timm_input, weights="; ".join(c.describe() for c in cached),
                     description=description, default=default, sources=tuple(cached),
                     input_for=kind.input_for)


def load_vit(spec: ModelSpec, *, arch: ViTArch, kind: ViTFamily, cached: tuple[CachedWeights, ...],
             weights: str | None, random_init: bool, device: str, **options: Any) -> Any:
    """Build the timm ViT and load a timm, original or transformers checkpoint (or init
    randomly); the input transform follows the format found."""
    opts = load_options(spec, options)
    arch = arch.tiny() if opts.tiny else arch
    source = find_weights(spec, weights, random_init, opts, cached,
                          "a timm, original or transformers checkpoint: .pth/.bin/.safetensors, "
                          "a timm folder, or a transformers save_pretrained folder")
    fmt, state, eps, input = TIMM, None, 1e-6, kind.timm_input
    if source.path is not None:
        fmt, state, eps, input = _read(source, kind)
    if opts.tiny and fmt != TRANSFORMERS:  # a processor folder brings its own size
        input = replace(input, size=arch.size)
    input = opts.input(input)
    if input.size % arch.patch:
        from zoo.errors import ZooError

        raise ZooError(f"{spec.id}: size={input.size} must be a multiple of the patch size "
                       f"{arch.patch}")
    pos = {TIMM: kind.pos, ORIGINAL: kind.original_pos, TRANSFORMERS: kind.transformers_pos}[fmt]
    module = _build(arch, eps, pos)
    if state is not None:
        _load_state(module, state, kind.drop_prefixes, str(source.path))
    return wrap_model(spec, module, vit_layers(arch), source.detected(fmt) if state else source,
                      input, device, tiny=opts.tiny)


def _build(arch: ViTArch, eps: float, pos: PosInterp | None) -> Any:
    """timm's ViT at the native grid, position embeddings resampled per forward (`pos`: the
    official/transformers interpolation instead of timm's antialiased one)."""
    import timm
    from torch import nn

    from zoo.model.weights import build_seeded

    module = build_seeded(lambda: timm.create_model(
        arch.timm_name, pretrained=False, num_classes=0, img_size=arch.native,
        embed_dim=arch.dim, depth=arch.depth, num_heads=arch.heads, dynamic_img_size=True,
        norm_layer=functools.partial(nn.LayerNorm, eps=eps)))
    if pos is not None:
        module._pos_embed = types.MethodType(functools.partial(_pos_embed, interp=pos), module)
    return module


def _pos_embed(self: Any, x: Any, interp: PosInterp) -> Any:
    """The class token and interpolated position embeddings, as the official DINOv2
    `interpolate_pos_encoding` (offset > 0) or transformers' Dinov2Model (offset 0) compute them."""
    import torch
    import torch.nn.functional as F

    n, h, w, c = x.shape
    pos = self.pos_embed
    grid = int(math.sqrt(pos.shape[1] - 1))
    if (h, w) != (grid, grid):
        patch = pos[:, 1:].float().reshape(1, grid, grid, c).permute(0, 3, 1, 2)
        scale = ({"scale_factor": ((h + interp.offset) / grid, (w + interp.offset) / grid)}
                 if interp.offset else {"size": (h, w)})
        patch = F.interpolate(patch, mode="bicubic", antialias=interp.antialias, **scale)
        pos = torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, -1, c).to(pos.dtype)],
                        1)
    x = torch.cat([self.cls_token.expand(n, -1, -1), x.reshape(n, -1, c)], 1) + pos
    return self.pos_drop(x)


def _read(source: Any, kind: ViTFamily) -> tuple[str, dict[str, Any], float, InputConfig]:
    """(format, state dict in the original layout, LayerNorm eps, input transform) of a file or
    folder: transformers folders through transformers; files by their layout and keys, else
    (keys as timm's) by the format of the cache entry they were found under."""
    from zoo.errors import WeightsError
    from zoo.model.weights import unwrap_checkpoint

    path = Path(source.path)
    config = _json(path / "config.json") if path.is_dir() else {}
    if config.get("model_type"):
        if config["model_type"] not in kind.transformers_types:
            raise WeightsError(f"{path} is a transformers {config['model_type']} folder; this "
                               f"family reads {', '.join(kind.transformers_types)}")
        state, eps = _from_transformers(path, source.trust)
        return TRANSFORMERS, state, eps, kind.input_for(TRANSFORMERS, path)
    checkpoint = source.read()
    state = unwrap_checkpoint(checkpoint, str(path))
    if any(k.startswith("embeddings.") for k in state):
        raise WeightsError(f"{path} holds transformers keys (embeddings.*): pass the "
                           "save_pretrained folder with its config.json")
    fmt = ORIGINAL if _is_original(checkpoint, state) or source.declared == ORIGINAL else TIMM
    return fmt, state, 1e-6, kind.input_for(fmt)


def _is_original(checkpoint: Any, state: dict[str, Any]) -> bool:
    """The facebookresearch layouts: `{'model': ...}` (MAE's release and training files),
    a mask token, registers or MAE's decoder; timm's files are bare or under `state_dict`."""
    return (isinstance(checkpoint.get("model"), dict)
            or any(k in state for k in ("mask_token", "register_tokens"))
            or any(k.startswith("decoder") for k in state))


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _from_transformers(folder: Path, trust: bool) -> tuple[dict[str, Any], float]:
    """Read a Dinov2Model / Dinov2WithRegistersModel / ViTMAEModel folder with transformers
    (offline; pickled weights read by zoo, `trust`: fully) and rename its weights to the
    original layout (q, k, v joined into qkv)."""
    import torch
    from transformers import AutoModel

    from zoo.errors import WeightsError
    from zoo.model.pretrained import load_pretrained

    model = load_pretrained(AutoModel.from_pretrained, folder, trust=trust)
    out: dict[str, Any] = {}
    qkv: dict[str, dict[str, Any]] = {}
    for key, value in model.state_dict().items():
        block = re.match(r"(?:encoder\.)?layers?\.(\d+)\.(.+)", key)
        if block is None:
            out[_rename(key, TOP_LEVEL)] = value
            continue
        i, rest = block.groups()
        part = re.match(r"attention\.(?:attention\.)?(q|k|v|query|key|value)(?:_proj)?\.(\w+)",
                        rest)
        if part:
            qkv.setdefault(f"blocks.{i}.attn.qkv.{part.group(2)}", {})[part.group(1)[0]] = value
            continue
        out[f"blocks.{i}.{_rename(rest, IN_BLOCK)}"] = value
    for name, parts in qkv.items():
        out[name] = torch.cat([parts["q"], parts["k"], parts["v"]])
    unknown = [k for k in out if not k.startswith(("blocks.",) + tuple(n for _, n in TOP_LEVEL))]
    if unknown:
        raise WeightsError(f"{folder}: transformers keys zoo cannot place: {unknown[:6]}")
    return out, model.config.layer_norm_eps


# transformers -> original names (both the transformers 4 and 5 spellings), by prefix
TOP_LEVEL = (("embeddings.cls_token", "cls_token"), ("embeddings.mask_token", "mask_token"),
             ("embeddings.position_embeddings", "pos_embed"),
             ("embeddings.register_tokens", "register_tokens"),
             ("embeddings.patch_embeddings.projection.", "patch_embed.proj."),
             ("layernorm.", "norm."))
IN_BLOCK = (("layernorm_before.", "norm1."), ("layernorm_after.", "norm2."),
            ("attention.o_proj.", "attn.proj."), ("attention.output.dense.", "attn.proj."),
            ("intermediate.dense.", "mlp.fc1."), ("output.dense.", "mlp.fc2."),
            ("layer_scale1.lambda1", "ls1.gamma"), ("layer_scale2.lambda1", "ls2.gamma"))


def _rename(key: str, table: tuple[tuple[str, str], ...]) -> str:
    return next((new + key[len(old):] for old, new in table if key.startswith(old)), key)


def _load_state(module: Any, state: dict[str, Any], drop_prefixes: tuple[str, ...],
                where: str) -> None:
    """timm's own conversion (original DINOv2/MAE layouts, pos-embed resampling), then an exact
    load; classifier heads and `drop_prefixes` keys are dropped."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    from zoo.errors import WeightsError
    from zoo.model.weights import load_into

    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes + ("head.",))}
    try:
        state = checkpoint_filter_fn(state, module)
    except Exception as exc:  # noqa: BLE001 - timm's converter fails on foreign layouts
        raise WeightsError(f"{where} is not a checkpoint of this ViT "
                           f"({type(exc).__name__}: {exc})") from None
    load_into(module, state, where)
