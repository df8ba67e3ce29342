"""`unetpp`: UNet++ (segmentation-models-pytorch), binary (1 class) by default, 128 px as in the
UNet++ vs Mask2Former study. The encoder is the arch (`unetpp/resnet34`).

Layers: the encoder stem and stages, every nested decoder node `x_i_j` (node at depth i of
column j; column j works at stride 2^(4-j), `x_0_j` is the main path) with its first conv
(`x_i_j.conv1`, after BN+ReLU) and its output (= its second conv), and the segmentation head's
logits. No UNet++ weights are published: pass your trained model with --weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl
from zoo.plugin import (
    Row,
    Segmentation,
    build_seeded,
    find_weights,
    in_order,
    load_into,
    load_options,
    segmentation_size,
    unwrap_checkpoint,
    wrap_model,
)

# the study's preprocessing: Resize 128 + CenterCrop 128, bilinear, ImageNet mean/std
INPUT = InputConfig(size=128)
ACCEPTS = ("a state dict of smp.UnetPlusPlus (.pth/.pt/.bin/.safetensors) or a folder from its "
           "save_pretrained")

# smp encoder -> its output channels: input, stem (stride 2), stages 1..4 (strides 4..32).
ENCODER_CHANNELS = {
    "resnet18": (3, 64, 64, 128, 256, 512),
    "resnet34": (3, 64, 64, 128, 256, 512),
    "resnet50": (3, 64, 256, 512, 1024, 2048),
}


@dataclass(frozen=True)
class UNetPPArch:
    """smp.UnetPlusPlus settings that shape its layers (encoder depth 5)."""

    encoder: str = "resnet34"
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    classes: int = 1
    size: int = 128

    def tiny(self) -> UNetPPArch:
        """ResNet-18 encoder, narrow decoder, 32 px (for tests)."""
        return replace(self, encoder="resnet18", decoder_channels=(32, 16, 8, 8, 4), size=32)


def decoder_nodes(arch: UNetPPArch) -> list[tuple[str, int, int]]:
    """(name, channels, stride) of every decoder node `x_i_j`, in smp's forward order (diagonal
    by diagonal: x_0_0, x_1_1, ..., then x_0_1, x_1_2, ..., last the full-resolution x_0_4)."""
    skips = list(ENCODER_CHANNELS[arch.encoder][1:][::-1][1:]) + [0]  # deepest skip first
    cols = len(arch.decoder_channels) - 1
    nodes = [(i, i + j) for j in range(cols) for i in range(cols - j)] + [(0, cols)]
    return [(f"x_{i}_{col}", arch.decoder_channels[col] if i == 0 else skips[col],
             2 ** (cols - col)) for i, col in nodes]


def layers_for(arch: UNetPPArch) -> list[LayerInfo]:
    """Encoder stem and stages, each decoder node's conv1 and output, then the logits."""
    enc = ENCODER_CHANNELS[arch.encoder]
    rows: list[Row] = [("encoder.stem", "encoder.relu", "stem",
                        dict(layout="NCHW", channels=enc[1], stride=2))]
    rows += [(f"encoder.layer{k}", f"encoder.layer{k}", "encoder",
              dict(layout="NCHW", channels=enc[k + 1], stride=2 ** (k + 1))) for k in range(1, 5)]
    for node, channels, stride in decoder_nodes(arch):
        shape = dict(layout="NCHW", channels=channels, stride=stride)
        rows += [(f"{node}.conv1", f"decoder.blocks.{node}.conv1", "decoder", shape),
                 (node, f"decoder.blocks.{node}", "decoder", shape)]
    rows.append(("logits", "segmentation_head", "head",
                 dict(layout="NCHW", channels=arch.classes, stride=1)))
    return in_order(rows)


@functools.cache
def _model_class() -> type:
    """UNet++'s ZooModel, a zoo.study.train Segmenter (defined on first load: zoo.model.base
    imports torch)."""
    from zoo.model.base import ZooModel

    class UNetPPModel(Segmentation, ZooModel):
        frozen_part = "encoder"

        def segmentation_logits(self, x: Any) -> Any:
            """(N, H, W) foreground logits: the head's single channel at input resolution."""
            return self.module(x)[:, 0]

    return UNetPPModel


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str,
          **options: Any) -> Any:
    """smp.UnetPlusPlus with a trained state dict (file or save_pretrained folder; training
    checkpoints and DDP `module.` keys too) or random init; `size`: input px, a multiple of 32."""
    import segmentation_models_pytorch as smp

    opts = load_options(spec, options)
    arch = UNetPPArch(encoder=spec.arch)
    arch = arch.tiny() if opts.tiny else arch
    input = opts.input(replace(INPUT, size=arch.size))
    arch = replace(arch, size=segmentation_size(spec, input.size))
    source = find_weights(spec, weights, random_init, opts, (), ACCEPTS)
    module = build_seeded(lambda: smp.UnetPlusPlus(
        encoder_name=arch.encoder, encoder_weights=None, classes=arch.classes,
        decoder_channels=arch.decoder_channels))
    if source.path is not None:
        file = source.file()
        state = unwrap_checkpoint(source.read(), str(file))
        load_into(module, {k.removeprefix("module."): v for k, v in state.items()}, str(file))
        source = source.detected("smp state dict")
    return wrap_model(spec, module, layers_for(arch), source, input, device, tiny=opts.tiny,
                      cls=_model_class())


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for encoder in ("resnet34", "resnet50"):
        arch = UNetPPArch(encoder=encoder)
        register(ModelSpec("unetpp", encoder, _load, functools.partial(layers_for, arch),
                           input=INPUT, weights="--weights PATH only (none published)",
                           default=encoder == "resnet34",
                           description=f"UNet++ ({encoder} encoder, 1 class, 128 px)"))
