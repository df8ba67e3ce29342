"""`zoo info` for the six families: their layer lists, built without weights or heavy imports, and
checked against the upstream libraries' own numbers where those are cheap to get."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zoo.registry.host import get_registry
from zoo.registry.specs import ROLES

BUILTIN = ("unetpp", "mask2former", "clip", "dinov2", "mae", "resnet-ssl")
HEAVY = ("torch", "transformers", "timm", "open_clip", "segmentation_models_pytorch")


def layers(name: str) -> dict:
    return {i.name: i for i in get_registry().model(name).layers()}


@pytest.mark.parametrize("family", BUILTIN)
def test_every_spec_lists_its_layers_without_weights(family: str):
    for spec in get_registry().families[family]:
        infos = spec.layers()
        assert infos and len({i.name for i in infos}) == len(infos), spec.id
        assert all(i.role in ROLES for i in infos), spec.id
        depths = [i.depth for i in infos]
        assert depths == sorted(depths) and depths[0] == 0.0 and depths[-1] == 1.0, spec.id


def test_listing_layers_imports_no_deep_learning_library():
    modules = ("unetpp", "mask2former", "clip", "dinov2", "mae", "resnet_ssl")
    code = (
        "import importlib, sys\n"
        "specs = []\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('zoo.plugins.' + m).register_models(register=specs.append)\n"
        "assert len(specs) >= 6 and all(s.layers() for s in specs)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_mask2former_roles_follow_module_paths_not_the_word_encoder():
    from zoo.plugins.mask2former import role_of

    infos = layers("mask2former")
    parts = {"model.pixel_level_module.encoder": "encoder",
             "model.pixel_level_module.decoder": "pixel_decoder",
             "model.transformer_module": "query_decoder"}
    for info in infos.values():
        prefix = next(p for p in parts if info.module.startswith(p))
        assert info.role == parts[prefix] == role_of(info.module), info.name
    # the pixel decoder's own "encoder" layers belong to the pixel decoder
    assert infos["pixel_decoder.layer0"].module.endswith("decoder.encoder.layers.0")
    assert infos["pixel_decoder.layer0"].role == "pixel_decoder"
    by_role = {r: [i for i in infos.values() if i.role == r]
               for r in ("encoder", "pixel_decoder", "query_decoder")}
    assert [i.name for i in by_role["encoder"]] == [f"backbone.stage{k}" for k in range(1, 5)]
    assert [(i.channels, i.stride) for i in by_role["encoder"]] == [
        (128, 4), (256, 8), (512, 16), (1024, 32)]  # Swin-B
    assert len([i for i in by_role["pixel_decoder"] if i.name.startswith("pixel_decoder.layer")]) \
        == 6
    queries = by_role["query_decoder"]
    assert all(i.layout == "NQC" and i.channels == 256 for i in queries)
    assert [i.call for i in queries if i.name.startswith("mask_embedder@")] == list(range(10))
    assert [i.name for i in queries if i.call is None] == [f"query.layer{k}" for k in range(1, 10)]


def test_vit_families_know_their_prefix_tokens_and_grid():
    for name, prefix, patch in (("dinov2", 5, 14), ("dinov2/vitb14", 1, 14), ("mae", 1, 16),
                                ("clip", 1, 16)):
        infos = layers(name)
        blocks = [i for i in infos.values() if i.name.startswith("block")]
        assert len(blocks) == 12, name
        assert all((i.layout, i.prefix_tokens, i.stride, i.channels) == ("NLC", prefix, patch, 768)
                   for i in blocks), name
        assert infos["embedding"].layout == "NC"
    assert layers("clip")["embedding"].channels == 512
    assert layers("clip/RN50.openai")["embedding"].channels == 1024


def test_resnet_layers_agree_with_timm_feature_info():
    import timm

    infos = layers("resnet-ssl")
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    for feature in model.feature_info:
        name = "stem" if feature["module"] == "act1" else feature["module"]
        assert (infos[name].channels, infos[name].stride) == (feature["num_chs"],
                                                              feature["reduction"])
    assert len([n for n in infos if n.startswith("layer") and "." in n]) == 3 + 4 + 6 + 3 - 4
    assert {s.tag for s in get_registry().families["resnet-ssl"]} >= {
        "moco-v1", "moco-v2", "moco-v3", "pcl", "swav", "deepcluster-v2", "sela-v2", "simclr",
        "pirl", "npid", "barlow-twins", "dino", "byol", "supervised"}


def test_clip_layers_agree_with_open_clip_configs():
    import open_clip

    for spec_id, arch in (("clip", "ViT-B-16"), ("clip/RN50.openai", "RN50")):
        config = open_clip.get_model_config(arch)
        infos = layers(spec_id)
        assert infos["embedding"].channels == config["embed_dim"]
        vision = config["vision_cfg"]
        if isinstance(vision["layers"], int):
            assert infos["block0"].channels == vision["width"]
            assert infos["block0"].stride == vision["patch_size"]
        else:
            stages = [infos[f"layer{k}"].channels for k in range(1, 5)]
            assert stages == [4 * vision["width"] * 2 ** k for k in range(4)]


def test_unetpp_nodes_agree_with_the_smp_decoder():
    from segmentation_models_pytorch.decoders.unetplusplus.decoder import UnetPlusPlusDecoder

    infos = layers("unetpp")
    decoder = UnetPlusPlusDecoder(encoder_channels=(3, 64, 64, 128, 256, 512),
                                  decoder_channels=(256, 128, 64, 32, 16))
    assert {n for n in infos if n.startswith("x_") and "." not in n} == set(decoder.blocks)
    for node, block in decoder.blocks.items():
        assert infos[node].channels == block.out_channels
        assert infos[f"{node}.conv1"].module == f"decoder.blocks.{node}.conv1"
    assert (infos["x_0_4"].stride, infos["x_0_0"].stride, infos["x_3_3"].stride) == (1, 16, 2)
    assert infos["logits"].channels == 1 and infos["logits"].role == "head"
