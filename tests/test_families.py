"""Conformance of every registered model family, generated from the registry (like timm's tests).

Each family's default spec is built small (`tiny=True`) with fixed-seed random weights; its
declared layers must match what the network really yields. The `slow` test does the same for the
built-in families at full size (every distinct architecture), which is what `zoo info` shows.
"""

from __future__ import annotations

import functools

import pytest
import torch

from zoo.registry.host import get_registry
from zoo.registry.specs import ROLES

BUILTIN = ("unetpp", "mask2former", "clip", "dinov2", "mae", "resnet-ssl")
FAMILIES = sorted(get_registry().families)


@functools.cache
def tiny_model(family: str):
    """The family's default spec, tiny and random-init (built once per test session)."""
    return get_registry().model(family).load(random_init=True, tiny=True)


def batch(size: int, n: int = 2) -> torch.Tensor:
    """A fixed random batch of normalised images."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@functools.cache
def full_forward(family: str) -> dict[str, torch.Tensor]:
    """Every layer of the tiny model in one full forward pass."""
    model = tiny_model(family)
    return model.forward_layers(batch(model.input.size), list(model.layers), stop_early=False)


def check_shape(info, feats: torch.Tensor, size: int, n: int) -> None:
    """A channels-last feature against its LayerInfo: rank, batch, channels, grid = size/stride."""
    assert feats.ndim == {"NCHW": 4, "NLC": 3, "NQC": 3, "NC": 2}[info.layout], info.name
    assert feats.shape[0] == n and feats.shape[-1] == info.channels, (info.name, feats.shape)
    if info.stride is None:
        return
    assert size % info.stride == 0, info.name
    side = size // info.stride
    if info.layout == "NCHW":
        assert feats.shape[1:3] == (side, side), (info.name, feats.shape)
    elif info.layout == "NLC":
        assert feats.shape[1] == info.prefix_tokens + side * side, (info.name, feats.shape)


def test_the_six_builtin_families_are_registered():
    assert set(BUILTIN) <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_infos_match_the_real_outputs(family: str):
    model = tiny_model(family)
    infos = list(model.layers.values())
    assert len({i.name for i in infos}) == len(infos)
    assert all(i.role in ROLES for i in infos), [i.role for i in infos]
    out = full_forward(family)
    for info in infos:
        feats = out[info.name]
        check_shape(info, feats, model.input.size, 2)
        assert torch.isfinite(feats).all(), info.name


@pytest.mark.parametrize("family", FAMILIES)
def test_random_init_is_marked_and_deterministic(family: str):
    model = tiny_model(family)
    assert model.random_init and model.fingerprint
    out = full_forward(family)
    again = model.forward_layers(batch(model.input.size), list(model.layers), stop_early=False)
    rebuilt = get_registry().model(family).load(random_init=True, tiny=True)
    fresh = rebuilt.forward_layers(batch(model.input.size), list(model.layers), stop_early=False)
    assert rebuilt.fingerprint == model.fingerprint
    for name in out:
        assert torch.equal(out[name], again[name]), name
        assert torch.equal(out[name], fresh[name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_early_stopping_gives_the_features_of_a_full_forward(family: str):
    model = tiny_model(family)
    out = full_forward(family)
    for name in model.layers:
        early = model.forward_layers(batch(model.input.size), [name], stop_early=True)
        assert torch.equal(early[name], out[name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_each_call_of_a_multi_call_module_is_its_own_layer(family: str):
    model = tiny_model(family)
    out = full_forward(family)
    by_module: dict[str, list] = {}
    for info in model.layers.values():
        if info.call is not None:
            by_module.setdefault(info.module, []).append(info)
    for module, infos in by_module.items():
        calls = [i.call for i in infos]
        assert len(set(calls)) == len(calls), module
        assert all(i.name.endswith(f"@{i.call}") for i in infos)
        for a, b in zip(infos, infos[1:]):
            assert out[a.name].shape == out[b.name].shape  # one row per image, never concatenated
            assert not torch.equal(out[a.name], out[b.name]), (a.name, b.name)


def test_mask2former_calls_its_mask_embedder_once_per_decoder_layer():
    model = tiny_model("mask2former")
    calls = [i.call for i in model.layers.values() if i.name.startswith("mask_embedder@")]
    decoder_layers = model.module.config.decoder_layers
    assert calls == list(range(decoder_layers))
    # the pixel decoder's encoder runs on the tokens of three scales (strides 32, 16, 8)
    size = model.input.size
    tokens = sum((size // s) ** 2 for s in (32, 16, 8))
    assert full_forward("mask2former")["pixel_decoder.layer0"].shape[1] == tokens


def test_mask2former_query_states_are_batch_first():
    model = tiny_model("mask2former")
    x = torch.cat([batch(model.input.size, 1), torch.zeros(1, 3, model.input.size,
                                                           model.input.size)])
    out = model.forward_layers(x, ["query.layer1"], stop_early=False)["query.layer1"]
    alone = model.forward_layers(x[1:], ["query.layer1"], stop_early=False)["query.layer1"]
    assert out.shape[:2] == (2, model.module.config.num_queries)
    torch.testing.assert_close(out[1], alone[0], rtol=1e-4, atol=1e-5)  # row 1 is image 1


@pytest.mark.parametrize("family", ["unetpp", "mask2former"])
def test_segmentation_families_train_and_freeze_their_backbone_by_path(family: str):
    model = get_registry().model(family).load(random_init=True, tiny=True)
    size = model.input.size
    masks = torch.zeros(2, size, size)
    masks[:, size // 4:size // 2, size // 4:] = 1
    params = model.set_trainable(freeze_encoder=True)
    frozen = model.module.get_submodule(model.frozen_part)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert len(params) == sum(p.requires_grad for p in model.module.parameters()) > 0
    loss = model.segmentation_loss(batch(size), masks, "bce-dice")
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in frozen.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    model.module.eval()
    with torch.no_grad():
        assert model.segmentation_logits(batch(size)).shape == (2, size, size)
    if family == "mask2former":  # the pixel decoder has an "encoder" too: it must stay trainable
        pixel = model.module.get_submodule("model.pixel_level_module.decoder.encoder")
        assert all(p.requires_grad for p in pixel.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN + ("unetpp/resnet50", "clip/RN50.openai",
                                           "dinov2/vitb14"))
def test_full_size_layers_match_the_real_outputs(name: str):
    spec = get_registry().model(name)
    model = spec.load(random_init=True)
    assert [i.name for i in spec.layers()] == list(model.layers)
    size = spec.input.size
    out = model.forward_layers(batch(size, 1), list(model.layers), stop_early=False)
    for info in spec.layers():
        check_shape(info, out[info.name], size, 1)
