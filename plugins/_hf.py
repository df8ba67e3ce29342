"""Code shared by the built-in families (their one helper module).

- `in_order`: LayerInfos from rows in forward order, relative depth by position.
- `resnet_stage_rows`: the stages and blocks of a ResNet (resnet-ssl, CLIP RN50).
- `reject_options`: an unknown build option is a user error, not a TypeError.
- `Segmentation`, `segmentation_size`: zoo.train's Segmenter methods and the `size` option of the
  segmentation families (UNet++, Mask2Former).
- timm Vision Transformers with weights from the Hugging Face hub (DINOv2, MAE): `ViTArch`, its
  layers, `vit_spec` and one offline loader. Token features are (N, tokens, C) with the class (and
  register) tokens first; block outputs are the residual stream before the final norm, as timm's
  `forward_intermediates` gives them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo.specs import InputConfig, LayerInfo, ModelSpec
from zoo.weights import CachedWeights


Row = tuple[str, str, str, dict[str, Any]]  # name, module path, role, other LayerInfo fields


def in_order(rows: Sequence[Row]) -> list[LayerInfo]:
    """LayerInfos from rows listed in forward order; relative depth is the position in [0, 1]."""
    last = max(len(rows) - 1, 1)
    return [LayerInfo(name, module, role, depth=i / last, **fields)
            for i, (name, module, role, fields) in enumerate(rows)]


def wrap_model(spec: ModelSpec, module: Any, layers: list[LayerInfo], source: Any, *,
               size: int, tiny: bool, device: str, cls: type | None = None,
               origin: str | None = None) -> Any:
    """The ZooModel (or family subclass `cls`) for a built module: the weights' fingerprint
    (tiny builds keyed apart), the input size actually built, and where the weights came from."""
    from zoo.model import ZooModel

    return (cls or ZooModel)(spec, module, layers,
                             fingerprint=source.fingerprint("tiny" if tiny else ""),
                             random_init=source.random_init, device=device,
                             input=replace(spec.input, size=size),
                             weights_source=source.origin if origin is None else origin)


def resnet_stage_rows(blocks: Sequence[int], widths: Sequence[int]) -> list[Row]:
    """Bottleneck stages (x4 expansion, strides 4..32): each stage's blocks but its last
    (`layer1.0`, `layer1.1`, ...), then the stage output `layer1` (which is its last block)."""
    rows: list[Row] = []
    for i, (n, width) in enumerate(zip(blocks, widths)):
        shape = dict(layout="NCHW", channels=4 * width, stride=4 * 2 ** i)
        rows += [(f"layer{i + 1}.{j}", f"layer{i + 1}.{j}", "encoder", shape)
                 for j in range(n - 1)]
        rows.append((f"layer{i + 1}", f"layer{i + 1}", "encoder", shape))
    return rows


def reject_options(spec: ModelSpec, unknown: dict[str, Any], known: Sequence[str]) -> None:
    """Raise a user error naming the first build option the family does not take."""
    if unknown:
        from zoo.errors import UnknownNameError

        raise UnknownNameError(f"build option of {spec.id}", sorted(unknown)[0], known)


def segmentation_size(size: int | None, default: int) -> int:
    """The segmentation families' `size` build option (input px): a multiple of their deepest
    stride, 32, so every layer's map is exactly size / stride."""
    if size is None:
        return default
    if size < 32 or size % 32:
        from zoo.errors import ZooError

        raise ZooError(f"option size={size}: use a multiple of 32 (e.g. 128, as in the study)")
    return size


class Segmentation:
    """Mixin for a segmentation family's ZooModel subclass: the loss and trainable parameters of
    zoo.train's Segmenter protocol; the subclass gives `segmentation_logits` and `frozen_part`,
    the module path that --freeze-encoder freezes (a path, never a substring match)."""

    frozen_part: str

    def segmentation_loss(self, x: Any, masks: Any, kind: str) -> Any:
        """The zoo.segmentation loss `kind` on the (N, H, W) foreground logits."""
        from zoo.segmentation import segmentation_loss

        return segmentation_loss(self.segmentation_logits(x), masks, kind)

    def set_trainable(self, freeze_encoder: bool) -> list[Any]:
        """Train mode, except the frozen part (eval mode, no gradients); the params to optimise."""
        module = self.module
        module.train()
        module.requires_grad_(True)
        if freeze_encoder:
            module.get_submodule(self.frozen_part).eval().requires_grad_(False)
        return [p for p in module.parameters() if p.requires_grad]


@dataclass(frozen=True)
class ViTArch:
    """A timm ViT as zoo builds it: the timm architecture name and the numbers the layers need."""

    timm_name: str
    dim: int
    depth: int
    heads: int
    patch: int
    size: int
    prefix_tokens: int

    def tiny(self) -> ViTArch:
        """Same architecture, 32 wide, 2 blocks, a 3x3 patch grid (for tests)."""
        return replace(self, dim=32, depth=2, heads=2, size=3 * self.patch)


def vit_layers(arch: ViTArch) -> list[LayerInfo]:
    """Tokens entering the blocks, every block, the final norm, and the pooled class embedding."""
    tokens = dict(layout="NLC", channels=arch.dim, stride=arch.patch,
                  prefix_tokens=arch.prefix_tokens)
    return in_order([("embed", "norm_pre", "stem", tokens)]
                    + [(f"block{i}", f"blocks.{i}", "encoder", tokens) for i in range(arch.depth)]
                    + [("norm", "norm", "encoder", tokens),
                       ("embedding", "head", "embedding", dict(layout="NC", channels=arch.dim))])


def vit_spec(family: str, arch_name: str, tag: str, arch: ViTArch, input: InputConfig,
             cached: Sequence[CachedWeights], description: str, default: bool = False,
             drop_prefixes: tuple[str, ...] = ()) -> ModelSpec:
    """A registered timm-ViT model; `drop_prefixes` are checkpoint keys that are not the encoder."""
    loader = functools.partial(load_vit, arch=arch, cached=tuple(cached),
                               drop_prefixes=drop_prefixes)
    return ModelSpec(family, arch_name, loader, functools.partial(vit_layers, arch), tag=tag,
                     input=input, weights="; ".join(c.describe() for c in cached),
                     description=description, default=default)


def load_vit(spec: ModelSpec, *, arch: ViTArch, cached: tuple[CachedWeights, ...],
             drop_prefixes: tuple[str, ...], weights: str | None, random_init: bool,
             device: str, tiny: bool = False, **unknown: Any) -> Any:
    """Build the timm ViT and load a timm/original checkpoint file or folder, or init randomly."""
    import timm

    from zoo.weights import build_seeded, resolve_weights

    reject_options(spec, unknown, ("tiny",))
    arch = arch.tiny() if tiny else arch
    source = resolve_weights(spec.id, weights, random_init, cached,
                             "a timm or original checkpoint: .pth/.bin/.safetensors, or a "
                             "timm model folder")
    module = build_seeded(lambda: timm.create_model(
        arch.timm_name, pretrained=False, num_classes=0, img_size=arch.size, embed_dim=arch.dim,
        depth=arch.depth, num_heads=arch.heads))
    if source.path is not None:
        _load_checkpoint(module, source.file(), drop_prefixes)
    return wrap_model(spec, module, vit_layers(arch), source, size=arch.size, tiny=tiny,
                      device=device)


def _load_checkpoint(module: Any, file: Path, drop_prefixes: tuple[str, ...]) -> None:
    """timm's own conversion (original DINOv2/MAE layouts, pos-embed resampling), then an exact
    load; classifier heads and `drop_prefixes` keys are dropped."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    from zoo.errors import WeightsError
    from zoo.weights import load_into, read_state_dict, unwrap_checkpoint

    state = unwrap_checkpoint(read_state_dict(file), str(file))
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes + ("head.",))}
    try:
        state = checkpoint_filter_fn(state, module)
    except Exception as exc:  # noqa: BLE001 - timm's converter fails on foreign layouts
        raise WeightsError(f"{file} is not a checkpoint of this ViT "
                           f"({type(exc).__name__}: {exc})") from None
    load_into(module, state, str(file))
