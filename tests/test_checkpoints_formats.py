"""Published checkpoint formats, written here by the upstream code at tiny size: transformers
folders in a Hugging Face cache, OpenAI's TorchScript CLIP, MAE training checkpoints with `args`,
numpy scalars; the official DINOv2 run-time position interpolation; safe loading that refuses a
pickle payload without running it. Loaded parameters and features equal the upstream model's."""

from __future__ import annotations

import argparse
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from zoo.data.resolve import open_dataset
from zoo.errors import WeightsError
from zoo.registry.host import get_registry

COMMIT = "0" * 40
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 forward passes through different (same-math) code


@pytest.fixture(autouse=True)
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Empty HF, torch hub and OpenAI (~/.cache/clip) caches under tmp_path."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield tmp_path
    torch.hub.set_dir(previous)


def in_hf_cache(root: Path, repo: str, folder: Path) -> None:
    """Lay a save_pretrained folder out as huggingface_hub caches a download of `repo`."""
    entry = root / "hf" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, entry / "snapshots" / COMMIT)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(COMMIT)


def trained(module: torch.nn.Module, seed: int = 7) -> torch.nn.Module:
    """Redraw every float parameter (shapes kept) so loaded values cannot match an init."""
    g = torch.Generator().manual_seed(seed)
    state = {k: (torch.randn(v.shape, generator=g) * 0.2 if v.is_floating_point() else v)
             for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    return module.eval()


def photos(n: int = 4) -> list:
    data = open_dataset("samples")
    return [data.image(i) for i in range(n)]


def zoo_layers(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return model.forward_layers(x, list(model.layers), stop_early=False)


# --- transformers ViT folders: DINOv2 (with and without registers), MAE -------------------------

def _dinov2(registers: bool):
    from transformers import (
        BitImageProcessor,
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    cls, cfg = ((Dinov2WithRegistersModel, Dinov2WithRegistersConfig) if registers
                else (Dinov2Model, Dinov2Config))
    model = trained(cls(cfg(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            image_size=70, patch_size=14)))  # native 5x5 grid; zoo runs 3x3
    processor = BitImageProcessor(size={"shortest_edge": 48}, crop_size={"height": 42,
                                  "width": 42}, resample=3, do_center_crop=True,
                                  image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224,
                                                                                 0.225])
    return model, processor


@pytest.mark.parametrize("name, repo, registers", [
    ("dinov2", "facebook/dinov2-with-registers-base", True),
    ("dinov2/vitb14", "facebook/dinov2-base", False)])
def test_transformers_dinov2_folders_load_from_the_hf_cache(name, repo, registers, caches):
    model, processor = _dinov2(registers)
    model.save_pretrained(caches / "folder")
    processor.save_pretrained(caches / "folder")
    in_hf_cache(caches, repo, caches / "folder")
    zmodel = get_registry().model(name).load(tiny=True)
    assert zmodel.provenance()["weights_format"] == "transformers"
    assert repo in zmodel.provenance()["weights_source"]
    images = photos()
    x = zmodel.preprocess(images)
    torch.testing.assert_close(x, processor(images=images, return_tensors="pt")["pixel_values"],
                               rtol=0, atol=1e-6)
    hf = model.state_dict()
    own = zmodel.module.state_dict()
    torch.testing.assert_close(own["blocks.1.attn.qkv.weight"], torch.cat(
        [hf[f"encoder.layer.1.attention.{p}_proj.weight"] for p in "qkv"]), rtol=0, atol=0)
    assert torch.equal(own["blocks.0.ls1.gamma"], hf["encoder.layer.0.layer_scale1.lambda1"])
    with torch.no_grad():
        ref = model(pixel_values=x, output_hidden_states=True)
    out = zoo_layers(zmodel, x)
    assert out["block0"].shape[1] == (5 if registers else 1) + 9
    torch.testing.assert_close(out["embed"], ref.hidden_states[0], **TOL)
    for i in range(2):
        torch.testing.assert_close(out[f"block{i}"], ref.hidden_states[i + 1], **TOL)
    torch.testing.assert_close(out["norm"], ref.last_hidden_state, **TOL)


def test_transformers_mae_folder_loads_and_runs_unmasked_in_raster_order(caches):
    from transformers import ViTImageProcessor, ViTMAEConfig, ViTMAEModel

    model = trained(ViTMAEModel(ViTMAEConfig(hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=128,
                                             image_size=80, patch_size=16)))
    processor = ViTImageProcessor(size={"height": 80, "width": 80}, resample=3)
    model.save_pretrained(caches / "folder")
    processor.save_pretrained(caches / "folder")
    in_hf_cache(caches, "facebook/vit-mae-base", caches / "folder")
    zmodel = get_registry().model("mae").load(tiny=True)
    images = photos()
    x = zmodel.preprocess(images)
    assert zmodel.input.resize == "squash" and zmodel.input.library == "transformers"
    torch.testing.assert_close(x, processor(images=images, return_tensors="pt")["pixel_values"],
                               rtol=0, atol=1e-6)
    model.config.mask_ratio = 0.0  # the reference: no masking, patches kept in raster order
    with torch.no_grad():
        ref = model(pixel_values=x, noise=torch.arange(25.0).expand(len(x), -1),
                    output_hidden_states=True)
    out = zoo_layers(zmodel, x)
    for i in range(2):
        torch.testing.assert_close(out[f"block{i}"], ref.hidden_states[i + 1], **TOL)
    torch.testing.assert_close(out["norm"], ref.last_hidden_state, **TOL)


# --- CLIP: transformers folders and OpenAI TorchScript ------------------------------------------

def _hf_clip(kind: str):
    """A tiny transformers CLIP of `kind`: the hub's CLIPModel, or a vision tower alone."""
    import transformers

    vision = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=2, image_size=32, patch_size=16, hidden_act="quick_gelu")
    if kind == "CLIPModel":
        config = transformers.CLIPConfig(vision_config=vision, projection_dim=16, text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            vocab_size=64, max_position_embeddings=8, eos_token_id=2))
    else:
        config = transformers.CLIPVisionConfig(**vision, projection_dim=16)
    model = trained(getattr(transformers, kind)(config))
    return model, transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                                  crop_size={"height": 32, "width": 32})


@pytest.mark.parametrize("kind", ["CLIPModel", "CLIPVisionModelWithProjection",
                                  "CLIPVisionModel"])
def test_transformers_clip_folders_load_from_the_hf_cache(kind, caches):
    model, processor = _hf_clip(kind)
    model.save_pretrained(caches / "folder")
    processor.save_pretrained(caches / "folder")
    in_hf_cache(caches, "openai/clip-vit-base-patch16", caches / "folder")
    zmodel = get_registry().model("clip").load(tiny=True)
    assert zmodel.provenance()["weights_format"] == "transformers"
    images = photos()
    x = zmodel.preprocess(images)
    torch.testing.assert_close(x, processor(images=images, return_tensors="pt")["pixel_values"],
                               rtol=0, atol=1e-6)
    projection = kind != "CLIPVisionModel"
    with torch.no_grad():
        ref = (model.vision_model if projection else model)(pixel_values=x,
                                                            output_hidden_states=True)
        pooled = model.visual_projection(ref.pooler_output) if projection else ref.pooler_output
    out = zoo_layers(zmodel, x)
    for i in range(2):
        torch.testing.assert_close(out[f"block{i}"], ref.hidden_states[i + 1], **TOL)
    torch.testing.assert_close(out["embed"], ref.hidden_states[0], **TOL)
    torch.testing.assert_close(out["embedding"], pooled, **TOL)
    assert zmodel.layers["embedding"].channels == pooled.shape[-1]


def test_openai_torchscript_clip_in_its_own_cache(caches):
    import open_clip

    from zoo.plugins.clip import VIT_B16

    reference = trained(open_clip.CLIP(**VIT_B16.tiny().open_clip_config(), quick_gelu=True))
    path = caches / "home" / ".cache" / "clip" / "ViT-B-16.pt"
    path.parent.mkdir(parents=True)
    torch.jit.save(torch.jit.script(reference), str(path))
    zmodel = get_registry().model("clip").load(tiny=True)
    prov = zmodel.provenance()
    assert prov["weights_format"] == "OpenAI TorchScript" and str(path) in prov["weights_source"]
    for key, value in reference.visual.state_dict().items():
        assert torch.equal(zmodel.module.state_dict()[key], value), key
    x = zmodel.preprocess(photos())
    with torch.no_grad():
        expected = torch.jit.load(str(path)).encode_image(x)
    torch.testing.assert_close(zoo_layers(zmodel, x)["embedding"], expected, **TOL)


def test_several_cached_sources_are_reported_and_one_can_be_picked(caches):
    model, processor = _dinov2(True)
    model.save_pretrained(caches / "folder")
    processor.save_pretrained(caches / "folder")
    in_hf_cache(caches, "facebook/dinov2-with-registers-base", caches / "folder")
    timm_state = get_registry().model("dinov2").load(random_init=True, tiny=True).module
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    official = {k: v for k, v in trained(timm_state).state_dict().items()
                if k not in ("reg_token", "pos_embed")}
    dim = official["cls_token"].shape[-1]
    official.update(register_tokens=torch.zeros(1, 4, dim), mask_token=torch.zeros(1, dim),
                    pos_embed=torch.zeros(1, 26, dim))
    torch.save(official, hub / "dinov2_vitb14_reg4_pretrain.pth")
    first = get_registry().model("dinov2").load(tiny=True).provenance()
    assert first["weights_format"] == "transformers"
    assert any("dinov2_vitb14_reg4_pretrain.pth" in c for c in first["candidates"])
    picked = get_registry().model("dinov2").load(tiny=True, source="torch hub").provenance()
    assert picked["weights_format"] == "original release"
    assert picked["preprocessing"]["crop_pct"] == 0.875  # DINOv2's own evaluation transform
    assert any("dinov2-with-registers-base" in c for c in picked["candidates"])
    with pytest.raises(WeightsError, match="matches 0 of the sources found"):
        get_registry().model("dinov2").load(tiny=True, source="nowhere")


# --- DINOv2 without registers: the official run-time interpolation ------------------------------

def official_interpolate_pos_encoding(pos_embed: torch.Tensor, x: torch.Tensor, w: int, h: int,
                                      patch_size: int) -> torch.Tensor:
    """facebookresearch/dinov2 DinoVisionTransformer.interpolate_pos_encoding (hub models:
    offset 0.1, no antialias), transcribed for a reference."""
    npatch = x.shape[1] - 1
    N = pos_embed.shape[1] - 1
    if npatch == N and w == h:
        return pos_embed
    pos_embed = pos_embed.float()
    class_pos_embed, patch_pos_embed = pos_embed[:, 0], pos_embed[:, 1:]
    dim = x.shape[-1]
    w0, h0 = w // patch_size + 0.1, h // patch_size + 0.1
    M = int(math.sqrt(N))
    patch_pos_embed = torch.nn.functional.interpolate(
        patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2),
        scale_factor=(float(w0 / math.sqrt(N)), float(h0 / math.sqrt(N))), mode="bicubic")
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def test_dinov2_without_registers_interpolates_as_the_official_hub_model(tmp_path: Path):
    zmodel = get_registry().model("dinov2/vitb14").load(random_init=True, tiny=True)
    trained(zmodel.module)
    vit = zmodel.module
    x = zmodel.preprocess(photos())
    _, _, w, h = x.shape
    tokens = vit.patch_embed(x).flatten(1, 2)
    tokens = torch.cat([vit.cls_token.expand(len(x), -1, -1), tokens], 1)
    with torch.no_grad():
        tokens = tokens + official_interpolate_pos_encoding(vit.pos_embed, tokens, w, h, 14)
        for block in vit.blocks:
            tokens = block(tokens)
        expected = vit.norm(tokens)
    out = zoo_layers(zmodel, x)["norm"]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    from timm.layers import resample_abs_pos_embed  # timm's load-time resampling differs

    with torch.no_grad():
        timm_pos = resample_abs_pos_embed(vit.pos_embed, (3, 3), num_prefix_tokens=1)
    assert not torch.allclose(timm_pos, official_interpolate_pos_encoding(
        vit.pos_embed, tokens, w, h, 14), atol=1e-4)


# --- training checkpoints and safe loading ------------------------------------------------------

def test_mae_training_checkpoint_with_args_and_numpy_scalars_loads(tmp_path: Path):
    state = trained(get_registry().model("mae").load(random_init=True, tiny=True).module)
    checkpoint = {"model": state.state_dict(), "epoch": 799, "scaler": {"scale": 65536.0},
                  "args": argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75,
                                             output_dir=Path("/out"), norm_pix_loss=True),
                  "best_acc": np.float64(0.731), "lr": np.float32(1e-4)}
    torch.save(checkpoint, tmp_path / "checkpoint-799.pth")
    zmodel = get_registry().model("mae").load(weights=str(tmp_path / "checkpoint-799.pth"),
                                             tiny=True)
    for key, value in state.state_dict().items():
        assert torch.equal(zmodel.module.state_dict()[key], value), key
    prov = zmodel.provenance()  # MAE's own {'model': ...} layout: MAE's evaluation transform
    assert prov["weights_format"] == "original release" and not prov["random_init"]
    assert prov["preprocessing"]["crop_pct"] == 0.875
    import hashlib

    assert prov["weights_sha256"] == hashlib.sha256(
        (tmp_path / "checkpoint-799.pth").read_bytes()).hexdigest()


class Payload:
    """Pickles as a call to os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_payload_is_refused_with_one_true_line_and_never_run(tmp_path: Path):
    marker = tmp_path / "payload-ran"
    state = get_registry().model("resnet-ssl").load(random_init=True, tiny=True).module
    torch.save({"state_dict": state.state_dict(), "extra": Payload(marker)}, tmp_path / "x.pth")
    with pytest.raises(WeightsError) as err:
        get_registry().model("resnet-ssl").load(weights=str(tmp_path / "x.pth"), tiny=True)
    message = str(err.value)
    assert not marker.exists()
    assert "\n" not in message and "\x1b" not in message
    assert "system" in message and "trust_weights=True" in message  # raised in Python
    assert "--trust-weights" not in message
    get_registry().model("resnet-ssl").load(weights=str(tmp_path / "x.pth"), tiny=True,
                                            trust_weights=True)
    assert marker.exists()  # the opt-in really unpickles everything


def test_safetensors_weights_are_fingerprinted_by_their_sha256(tmp_path: Path):
    state = get_registry().model("unetpp").load(random_init=True, tiny=True).module.state_dict()
    save_file(state, tmp_path / "w.safetensors")
    zmodel = get_registry().model("unetpp").load(weights=str(tmp_path / "w.safetensors"),
                                                tiny=True)
    import hashlib

    digest = hashlib.sha256((tmp_path / "w.safetensors").read_bytes()).hexdigest()
    assert zmodel.provenance()["weights_sha256"] == digest
    assert zmodel.fingerprint == digest[:16]


def test_mask2former_folder_runs_at_its_image_processors_scale(tmp_path: Path):
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    from zoo.plugins.mask2former import SWIN_BASE

    model = Mask2FormerForUniversalSegmentation(SWIN_BASE.tiny().config())
    model.save_pretrained(tmp_path / "folder")
    Mask2FormerImageProcessor(size={"shortest_edge": 90, "longest_edge": 400}, resample=3,
                              image_mean=[0.5, 0.5, 0.5], image_std=[0.2, 0.2, 0.2]
                              ).save_pretrained(tmp_path / "folder")
    zmodel = get_registry().model("mask2former").load(weights=str(tmp_path / "folder"),
                                                      tiny=True)
    assert (zmodel.input.size, zmodel.input.interpolation) == (96, "bicubic")  # 90 -> /32
    assert zmodel.input.mean == (0.5, 0.5, 0.5) and zmodel.input.std == (0.2, 0.2, 0.2)
    x = zmodel.preprocess(photos(1))
    out = zmodel.forward_layers(x, ["backbone.stage1"])["backbone.stage1"]
    assert x.shape[-1] == 96 and out.shape[1] == 96 // 4
