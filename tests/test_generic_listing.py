"""Generic families in `zoo list` / `zoo info` (no torch for listing), name resolution and its
errors, and `zoo.wrap(prefix_tokens=...)`."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from tests.conftest import assert_user_error, run_without_torch, run_zoo
from zoo.errors import UnknownNameError, ZooError


def test_list_glob_without_importing_torch() -> None:
    """The index is built once per library version; a later `zoo list GLOB` imports no torch."""
    assert run_zoo("list", "timm/resnet1*").returncode == 0  # builds the index (same cache dir)
    result = run_without_torch(["list"], ["list", "timm/*vit_small*", "--json"])
    assert "timm/..." in result.stdout and "hf/..." in result.stdout
    rows = json.loads(result.stdout[result.stdout.index("\n[\n") + 1:])
    ids = {r["id"] for r in rows}
    assert "timm/vit_small_patch16_224" in ids and "timm/vit_small_patch16_224.augreg_in21k" in ids
    assert all("vit_small" in i for i in ids)


def test_info_declares_layers_without_weights() -> None:
    result = run_zoo("info", "timm/convnext_tiny", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    layers = {l["name"]: l for l in info["layers"]}
    assert [layers[f"stages.{i}"]["stride"] for i in range(4)] == [4, 8, 16, 32]
    assert [layers[f"stages.{i}"]["channels"] for i in range(4)] == [96, 192, 384, 768]
    assert layers["pre_logits"]["layout"] == "NC"
    assert info["input"]["library"] == "timm" and info["input"]["crop_pct"] == 0.95


def test_encoder_only_towers_declare_no_pooled_embedding() -> None:
    """timm's Qwen3 ViT encoder has no classification interface (its forward_head raises):
    its blocks are declared and no `pre_logits` (the full registry sweep failed here)."""
    result = run_zoo("info", "timm/qwen3_vit_88m_enc", "--json")
    assert result.returncode == 0, result.stderr
    names = [l["name"] for l in json.loads(result.stdout)["layers"]]
    assert "blocks.11" in names and "pre_logits" not in names


def test_unknown_names_are_one_line_errors() -> None:
    assert_user_error(run_zoo("info", "timm/convnext_tinyy"), "timm architecture",
                      "convnext_tiny")
    assert_user_error(run_zoo("info", "torchvision/resnet50.NOPE"), "IMAGENET1K_V2")
    with pytest.raises(UnknownNameError, match="open_clip architecture"):
        zoo.load("open_clip/ViT-Q-99", random_init=True)
    with pytest.raises(ZooError, match="hf/<org>/<repo>"):
        zoo.load("hf/justone", random_init=True)


def test_missing_weights_say_where_they_were_looked_for() -> None:
    with pytest.raises(ZooError, match="timm/resnet18.a1_in1k.*random_init=True"):
        zoo.load("timm/resnet18")


def test_hf_default_config_of_the_named_type_at_random_init() -> None:
    """No cached config: the model type the repo name names, at its default config."""
    from zoo.plugins.hf_family import default_type

    assert default_type("dinov2-with-registers-small", ["dinov2", "dinov2_with_registers",
                                                        "vit"]) == "dinov2_with_registers"
    model = zoo.load("hf/facebook/dinov2-small", random_init=True)
    layers = {l.name: l for l in model.layers.values()}
    assert layers["hidden_states.12"].prefix_tokens == 1
    assert layers["hidden_states.12"].channels == 768  # Dinov2Config() default (base)
    assert model.provenance()["config"].startswith("Dinov2Config() defaults")  # said, not hidden


def test_wrap_prefix_tokens_gap_and_grid() -> None:
    """torchvision's ViT-B/16 token layout (class token + 14x14 patches at 224 px) in a narrow,
    4-block build of the same class."""
    from torchvision.models import VisionTransformer

    module = VisionTransformer(image_size=224, patch_size=16, num_layers=4, num_heads=2,
                               hidden_dim=32, mlp_dim=64)
    with pytest.raises(ZooError, match=r"layer 'b3' has 197 tokens.*prefix_tokens=\{'b3': 1\}"):
        zoo.wrap(module, {"b3": "encoder.layers.encoder_layer_3"})
    wrapped = zoo.wrap(module, {"b3": "encoder.layers.encoder_layer_3"}, prefix_tokens={"b3": 1})
    info = wrapped.layers["b3"]
    assert (info.prefix_tokens, info.stride) == (1, 16)
    feats = zoo.extract(wrapped, zoo.dataset("samples").subset(range(2)), layers="b3",
                        reduction="none", cache=False)["b3"].data
    gap = zoo.extract(wrapped, zoo.dataset("samples").subset(range(2)), layers="b3",
                      reduction="gap", cache=False)["b3"].data
    assert feats.shape[1] == 197
    torch.testing.assert_close(torch.from_numpy(gap), torch.from_numpy(feats[:, 1:].mean(1)))
    with pytest.raises(ZooError, match="whole number"):
        zoo.wrap(module, ["encoder.layers.encoder_layer_3"], prefix_tokens=-1)
