"""`toy`: tiny random-init CNN and ViT (fixed seed, milliseconds on CPU) for tests and examples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl

SEED = 0
SIZE = 32
CNN_WIDTHS = (8, 16, 32)
VIT_DIM, VIT_DEPTH, VIT_PATCH = 24, 3, 8
INPUT = InputConfig(size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def cnn_layers() -> list[LayerInfo]:
    """stem (stride 2) and three stages (strides 2, 4, 8), then the pooled embedding."""
    layers = [LayerInfo("stem", "stem", "stem", "NCHW", CNN_WIDTHS[0], 1, 0.0)]
    for i, width in enumerate(CNN_WIDTHS):
        layers.append(LayerInfo(f"stage{i + 1}", f"stages.{i}", "encoder", "NCHW", width,
                                2 ** (i + 1), (i + 1) / (len(CNN_WIDTHS) + 1)))
    layers.append(LayerInfo("embed", "head", "embedding", "NC", CNN_WIDTHS[-1], None, 1.0))
    return layers


def vit_layers() -> list[LayerInfo]:
    """Patch embedding, every block (class token first), and the class-token embedding."""
    layers = [LayerInfo("patch_embed", "patch_embed", "stem", "NLC", VIT_DIM, VIT_PATCH, 0.0, 1)]
    for i in range(VIT_DEPTH):
        layers.append(LayerInfo(f"block{i}", f"blocks.{i}", "encoder", "NLC", VIT_DIM,
                                VIT_PATCH, (i + 1) / (VIT_DEPTH + 1), 1))
    layers.append(LayerInfo("embed", "head", "embedding", "NC", VIT_DIM, None, 1.0))
    return layers


def _build(arch: str) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    if arch == "cnn":
        class ToyCNN(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.stem = nn.Sequential(nn.Conv2d(3, CNN_WIDTHS[0], 3, padding=1), nn.ReLU())
                chans = (CNN_WIDTHS[0],) + CNN_WIDTHS
                self.stages = nn.ModuleList(
                    nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1),
                                  nn.BatchNorm2d(chans[i + 1]), nn.ReLU())
                    for i in range(len(CNN_WIDTHS)))
                self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = self.stem(x)
                for stage in self.stages:
                    x = stage(x)
                return self.head(x)

        return ToyCNN()

    class ToyViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            grid = (SIZE // VIT_PATCH) ** 2
            self.proj = nn.Conv2d(3, VIT_DIM, VIT_PATCH, stride=VIT_PATCH)
            self.cls = nn.Parameter(torch.randn(1, 1, VIT_DIM) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, grid + 1, VIT_DIM) * 0.02)
            self.patch_embed = nn.Identity()
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(VIT_DIM, 2, 2 * VIT_DIM, dropout=0.0,
                                           batch_first=True, norm_first=True)
                for _ in range(VIT_DEPTH))
            self.head = nn.LayerNorm(VIT_DIM)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.proj(x).flatten(2).transpose(1, 2)
            tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1) + self.pos
            tokens = self.patch_embed(tokens)
            for block in self.blocks:
                tokens = block(tokens)
            return self.head(tokens[:, 0])

    return ToyViT()


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str,
          **options: Any) -> Any:
    """Toy models are random-init from a fixed seed unless `weights` (a state dict) is given."""
    from zoo.plugin import find_weights, load_into, load_options, wrap_model

    opts = load_options(spec, options)
    if spec.arch == "vit" and opts.size not in (None, INPUT.size):
        from zoo.errors import ZooError

        raise ZooError(f"toy/vit is built for {INPUT.size} px (a fixed grid of position "
                       f"embeddings); drop size={opts.size}")
    module = _build(spec.arch)
    source = find_weights(spec, weights, not weights, opts)
    if source.path is not None:
        load_into(module, source.read(), str(source.path))
        source = source.detected("toy state dict")
    return wrap_model(spec, module, spec.layers(), source, opts.input(spec), device)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec("toy", "cnn", _load, cnn_layers, input=INPUT, default=True,
                       weights="fixed-seed random init",
                       description="3-stage CNN, 32 px, random init (tests and examples)"))
    register(ModelSpec("toy", "vit", _load, vit_layers, input=INPUT,
                       weights="fixed-seed random init",
                       description="3-block ViT with a class token, 32 px, random init"))
