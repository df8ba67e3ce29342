"""The base model contract: hooks, per-call names of modules that fire several times, early stop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo import LayerInfo, ModelSpec
from zoo.errors import UnknownNameError, ZooError
from zoo.model.base import ZooModel


class Twice(nn.Module):
    """Applies the same `shared` module twice, like Mask2Former's mask embedder."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(3, 4, 1)
        self.shared = nn.Conv2d(4, 4, 1)
        self.last = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.shared(self.shared(self.first(x))))


def _model(layers: list[LayerInfo]) -> ZooModel:
    spec = ModelSpec("t", "twice", loader=None, layers=lambda: layers)
    return ZooModel(spec, Twice(), layers, fingerprint="t", random_init=True)


def test_each_call_of_a_shared_module_is_its_own_layer():
    layers = [LayerInfo("shared@0", "shared", "encoder", "NCHW", 4, 1, 0.3, call=0),
              LayerInfo("shared@1", "shared", "encoder", "NCHW", 4, 1, 0.6, call=1)]
    model = _model(layers)
    x = torch.randn(2, 3, 5, 5)
    out = model.forward_layers(x, ["shared@0", "shared@1"])
    assert out["shared@0"].shape == (2, 5, 5, 4)  # channels-last, batch rows unchanged
    assert not torch.allclose(out["shared@0"], out["shared@1"])
    net = model.module
    expected = net.shared(net.shared(net.first(x))).permute(0, 2, 3, 1)
    torch.testing.assert_close(out["shared@1"], expected)


def test_a_shared_module_without_call_index_is_an_error_not_a_concat():
    model = _model([LayerInfo("shared", "shared", "encoder", "NCHW", 4, 1, 0.5)])
    with pytest.raises(ZooError, match="fires more than once"):
        model.forward_layers(torch.randn(1, 3, 4, 4), ["shared"], stop_early=False)


def test_early_stop_gives_the_same_features_and_skips_later_modules():
    layers = [LayerInfo("first", "first", "encoder", "NCHW", 4, 1, 0.0),
              LayerInfo("last", "last", "head", "NCHW", 2, 1, 1.0)]
    model = _model(layers)
    calls = []
    model.module.last.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 3, 4, 4)
    early = model.forward_layers(x, ["first"], stop_early=True)
    assert calls == []
    full = model.forward_layers(x, ["first"], stop_early=False)
    assert calls == [1]
    torch.testing.assert_close(early["first"], full["first"])


def test_unknown_layer_names_the_available_ones():
    model = _model([LayerInfo("first", "first", "encoder", "NCHW", 4, 1, 0.0)])
    with pytest.raises(UnknownNameError, match="available: first"):
        model.forward_layers(torch.randn(1, 3, 4, 4), ["nope"])


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_toy_layers_match_their_outputs(arch: str):
    from zoo.registry.host import get_registry

    spec = get_registry().model(f"toy/{arch}")
    model = spec.load()
    x = torch.randn(2, 3, spec.input.size, spec.input.size)
    out = model.forward_layers(x, list(model.layers), stop_early=False)
    for name, info in model.layers.items():
        feats = out[name]
        assert feats.shape[-1] == info.channels, name
        if info.layout == "NCHW":
            assert feats.shape[1] == spec.input.size // info.stride, name
        if info.layout == "NLC":
            assert feats.shape[1] == info.prefix_tokens + (spec.input.size // info.stride) ** 2
    again = spec.load().forward_layers(x, list(model.layers))
    for name in out:
        torch.testing.assert_close(out[name], again[name])
