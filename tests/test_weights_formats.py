"""Real weights, offline: every supported checkpoint layout, written here from tiny random models in
the upstream key layout, loads into the family with exactly the saved values; local caches are
found by their usual names; a wrong file or no weights at all is a clear WeightsError."""

from __future__ import annotations

import functools
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from zoo.errors import WeightsError
from zoo.model.weights import CachedWeights, resolve_weights
from zoo.registry.host import get_registry

COMMIT = "0" * 40


@pytest.fixture(autouse=True)
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Fresh, empty Hugging Face and torch hub caches: tests never read the user's."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield tmp_path
    torch.hub.set_dir(previous)


def put_in_hf_cache(root: Path, repo: str, files: dict[str, Path]) -> None:
    """Lay `files` out as huggingface_hub caches a download of `repo` (refs/main -> snapshot)."""
    folder = root / "hf" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    for name, src in files.items():
        shutil.copy(src, snapshot / name)


def trained(state: dict[str, torch.Tensor], seed: int = 7) -> dict[str, torch.Tensor]:
    """Values unlike the fixed-seed init: every float tensor redrawn (shapes kept)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
            for k, v in state.items()}


def assert_holds(module: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    """Every expected tensor is in the module's state, equal."""
    state = module.state_dict()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def load(name: str, weights: Path | None = None, **options):
    return get_registry().model(name).load(weights=str(weights) if weights else None, tiny=True,
                                           **options)


@functools.cache
def tiny_state(name: str) -> dict[str, torch.Tensor]:
    """Trained-looking weights for the tiny build of `name`'s network."""
    model = get_registry().model(name).load(random_init=True, tiny=True)
    return trained(model.module.state_dict())


# --- resolving weights ---------------------------------------------------------------------------

def test_missing_weights_say_where_zoo_looked_and_how_to_pass_them(empty_caches: Path):
    with pytest.raises(WeightsError) as err:
        load("dinov2")
    msg = str(err.value)
    for needle in ("timm/vit_base_patch14_reg4_dinov2.lvd142m", "dinov2_vitb14_reg4_pretrain.pth",
                   str(empty_caches / "hf"), str(empty_caches / "torch-hub" / "checkpoints"),
                   "weights=PATH", "random_init=True"):  # raised in Python: Python's words
        assert needle in msg
    with pytest.raises(WeightsError, match="no published weights"):
        load("unetpp")


def test_weights_and_random_init_together_or_a_missing_path_are_errors(tmp_path: Path):
    with pytest.raises(WeightsError, match="not both"):
        resolve_weights("m", str(tmp_path), True)
    with pytest.raises(WeightsError, match="does not exist"):
        load("mae", tmp_path / "nope.pth")


def test_random_init_fingerprints_differ_from_real_weights(tmp_path: Path):
    source = resolve_weights("m", None, True, [CachedWeights("org/repo")])
    assert source.random_init and source.fingerprint() != source.fingerprint("tiny")
    save_file(tiny_state("mae"), tmp_path / "w.safetensors")
    model = load("mae", tmp_path / "w.safetensors")
    assert not model.random_init and "random" not in model.fingerprint


# --- resnet-ssl: the published self-supervised layouts -----------------------------------------

def _head(*shape: int) -> torch.Tensor:
    return torch.ones(shape)


def _prefixed(prefix: str, state: dict, **extra) -> dict:
    return {**{prefix + k: v for k, v in state.items()}, **extra}


def _other(state: dict) -> dict:
    """A second copy with different values (momentum / EMA encoders)."""
    return trained(state, seed=99)


LAYOUTS = {
    "MoCo v1/v2, PCL": lambda s: {"epoch": 200, "arch": "resnet50", "state_dict": {
        **_prefixed("module.encoder_q.", s), "module.encoder_q.fc.0.weight": _head(8, 256),
        "module.encoder_q.fc.2.weight": _head(4, 8), **_prefixed("module.encoder_k.", _other(s)),
        "module.queue": _head(4, 16)}},
    "MoCo v3": lambda s: {"state_dict": {
        **_prefixed("module.base_encoder.", s), "module.base_encoder.fc.0.weight": _head(8, 256),
        **_prefixed("module.momentum_encoder.", _other(s)),
        "module.predictor.0.weight": _head(8, 8)}},
    "SwAV, DeepCluster-v2, SeLa-v2": lambda s: _prefixed(
        "module.", s, **{"module.projection_head.0.weight": _head(8, 256),
                         "module.prototypes.weight": _head(30, 8)}),
    "VISSL trunk": lambda s: {"phase_idx": 999, "classy_state_dict": {"base_model": {"model": {
        "trunk": {"_feature_blocks." + k: v for k, v in s.items()
                  if not k.endswith("num_batches_tracked")},  # VISSL trunks may lack them
        "heads": {"0.clf.0.weight": _head(4, 256)}}}}},
    "mmselfsup / solo-learn": lambda s: {"meta": {"epoch": 200}, "state_dict": {
        **_prefixed("backbone.", s), **_prefixed("momentum_backbone.", _other(s)),
        "neck.mlp.0.weight": _head(8, 256), "projector.0.weight": _head(8, 256)}},
    "PyContrast": lambda s: {"model": _prefixed("module.encoder.", s,
                                                **{"module.head.fc.weight": _head(8, 256)}),
                             "model_ema": _prefixed("module.encoder.", _other(s))},
    "torchvision": lambda s: {**s, "fc.weight": _head(1000, 256), "fc.bias": _head(1000)},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_resnet_ssl_loads_each_published_layout(layout: str, tmp_path: Path):
    state = tiny_state("resnet-ssl")
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(LAYOUTS[layout](state), path)
    model = load("resnet-ssl", path)
    assert_holds(model.module, state)  # the backbone, never a momentum or EMA copy
    assert f"format: {layout}" in model.weights_source and not model.random_init


def test_resnet_ssl_reads_safetensors_and_folders(tmp_path: Path):
    state = tiny_state("resnet-ssl")
    (tmp_path / "folder").mkdir()
    save_file({**state, "fc.weight": _head(10, 256)}, tmp_path / "folder" / "model.safetensors")
    assert_holds(load("resnet-ssl/resnet50.supervised", tmp_path / "folder").module, state)


@pytest.mark.parametrize("change, message", [
    (lambda s: {k: v for k, v in s.items() if k != "layer1.0.conv1.weight"},
     "missing 1 keys: layer1.0.conv1.weight"),
    (lambda s: {**s, "layer5.0.conv1.weight": _head(2)}, "unexpected 1 keys: layer5.0.conv1"),
    (lambda s: {**s, "conv1.weight": _head(2, 3, 7, 7)}, "mis-shaped 1 keys: conv1.weight"),
    (lambda s: {"state_dict": {"encoder.weight": _head(2)}}, "no ResNet-50 backbone"),
    (lambda s: {"classy_state_dict": {"base_model": {}}}, "VISSL checkpoint without"),
])
def test_resnet_ssl_wrong_checkpoints_name_the_problem(change, message: str, tmp_path: Path):
    path = tmp_path / "bad.pth"
    torch.save(change(tiny_state("resnet-ssl")), path)
    with pytest.raises(WeightsError, match=message):
        load("resnet-ssl", path)


def test_an_unreadable_file_is_a_weights_error(tmp_path: Path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        load("resnet-ssl", path)


def test_resnet_ssl_finds_published_files_in_the_torch_hub_cache(empty_caches: Path):
    state = tiny_state("resnet-ssl")
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / "dino_resnet50_pretrain.pth")
    model = load("resnet-ssl/resnet50.dino")
    assert_holds(model.module, state)
    assert "torch hub cache dino_resnet50_pretrain.pth" in model.weights_source
    with pytest.raises(WeightsError, match="moco_v2_800ep_pretrain.pth.tar"):
        load("resnet-ssl/resnet50.moco-v2")


def test_supervised_resnet_comes_from_timms_hub_cache(empty_caches: Path, tmp_path: Path):
    state = tiny_state("resnet-ssl")
    save_file({**state, "fc.weight": _head(10, 256)}, tmp_path / "model.safetensors")
    put_in_hf_cache(empty_caches, "timm/resnet50.tv_in1k",
                    {"model.safetensors": tmp_path / "model.safetensors"})
    assert_holds(load("resnet-ssl/resnet50.supervised").module, state)


# --- timm ViTs: DINOv2 and MAE -------------------------------------------------------------------

def test_dinov2_loads_timm_files_folders_and_its_hub_cache(empty_caches: Path, tmp_path: Path):
    state = tiny_state("dinov2")
    save_file(state, tmp_path / "model.safetensors")
    assert_holds(load("dinov2", tmp_path / "model.safetensors").module, state)
    folder = tmp_path / "timm-folder"
    folder.mkdir()
    shutil.copy(tmp_path / "model.safetensors", folder / "model.safetensors")
    (folder / "config.json").write_text("{}")
    assert_holds(load("dinov2", folder).module, state)
    put_in_hf_cache(empty_caches, "timm/vit_base_patch14_reg4_dinov2.lvd142m",
                    {"model.safetensors": tmp_path / "model.safetensors"})
    model = load("dinov2")
    assert_holds(model.module, state)
    assert "HF cache timm/vit_base_patch14_reg4_dinov2.lvd142m" in model.weights_source


def test_dinov2_loads_the_original_facebookresearch_layout(tmp_path: Path):
    state = tiny_state("dinov2")
    original = {k: v for k, v in state.items() if k not in ("reg_token", "pos_embed")}
    dim = state["cls_token"].shape[-1]
    original.update(register_tokens=state["reg_token"], mask_token=torch.zeros(1, dim),
                    pos_embed=torch.cat([torch.zeros(1, 1, dim), state["pos_embed"]], 1))
    torch.save(original, tmp_path / "dinov2_vitb14_reg4_pretrain.pth")
    assert_holds(load("dinov2", tmp_path / "dinov2_vitb14_reg4_pretrain.pth").module, state)


def test_mae_loads_the_original_layout_without_its_decoder(tmp_path: Path):
    state = tiny_state("mae")
    checkpoint = {"model": {**state, "mask_token": _head(1, 1, 32),
                            "decoder_embed.weight": _head(16, 32),
                            "decoder_blocks.0.norm1.weight": _head(16)}}
    torch.save(checkpoint, tmp_path / "mae_visualize_vit_base.pth")
    assert_holds(load("mae", tmp_path / "mae_visualize_vit_base.pth").module, state)


def test_a_foreign_vit_checkpoint_is_rejected_with_its_keys(tmp_path: Path):
    save_file({"embeddings.cls_token": torch.zeros(1, 1, 32)}, tmp_path / "hf-dinov2.safetensors")
    with pytest.raises(WeightsError, match="transformers keys .* pass the save_pretrained folder"):
        load("dinov2", tmp_path / "hf-dinov2.safetensors")
    save_file({"stem.conv.weight": torch.zeros(1, 1, 32)}, tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match="does not fit the model: missing"):
        load("dinov2", tmp_path / "other.safetensors")


# --- CLIP (open_clip) ----------------------------------------------------------------------------

@functools.cache
def tiny_clip_state(arch_name: str) -> dict[str, torch.Tensor]:
    """A full tiny open_clip CLIP (image and text towers) state dict, trained-looking."""
    import open_clip

    from zoo.plugins import clip

    arch = {"ViT-B-16": clip.VIT_B16, "RN50": clip.RN50}[arch_name].tiny()
    model = open_clip.CLIP(**arch.open_clip_config())
    return trained(model.state_dict())


def visual(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}


def test_clip_loads_open_clip_files_folders_training_checkpoints_and_cache(
        empty_caches: Path, tmp_path: Path):
    state = tiny_clip_state("ViT-B-16")
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    assert_holds(load("clip", tmp_path / "open_clip_pytorch_model.bin").module, visual(state))
    folder = tmp_path / "folder"
    folder.mkdir()
    save_file(state, folder / "open_clip_model.safetensors")
    assert_holds(load("clip", folder).module, visual(state))
    torch.save({"epoch": 32, "state_dict": {"module." + k: v for k, v in state.items()}},
               tmp_path / "epoch_32.pt")
    assert_holds(load("clip", tmp_path / "epoch_32.pt").module, visual(state))
    put_in_hf_cache(empty_caches, "timm/vit_base_patch16_clip_224.openai",
                    {"open_clip_model.safetensors": folder / "open_clip_model.safetensors"})
    assert_holds(load("clip").module, visual(state))


def test_clip_rejects_a_checkpoint_of_another_tower(tmp_path: Path):
    torch.save(tiny_clip_state("RN50"), tmp_path / "rn50.pt")
    with pytest.raises(WeightsError, match=r"rn50.pt \(open_clip\) does not fit the model"):
        load("clip", tmp_path / "rn50.pt")
    assert_holds(load("clip/RN50.openai", tmp_path / "rn50.pt").module,
                 visual(tiny_clip_state("RN50")))


# --- UNet++ (segmentation-models-pytorch) --------------------------------------------------------

def test_unetpp_loads_state_dicts_training_checkpoints_and_save_pretrained(tmp_path: Path):
    state = tiny_state("unetpp")
    torch.save(state, tmp_path / "unetpp.pth")
    assert_holds(load("unetpp", tmp_path / "unetpp.pth").module, state)
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}},
               tmp_path / "last.ckpt")
    assert_holds(load("unetpp", tmp_path / "last.ckpt").module, state)
    model = get_registry().model("unetpp").load(random_init=True, tiny=True)
    model.module.load_state_dict(state)
    model.module.save_pretrained(tmp_path / "smp-folder")
    assert_holds(load("unetpp", tmp_path / "smp-folder").module, state)


def test_unetpp_rejects_another_networks_weights(tmp_path: Path):
    torch.save(tiny_state("resnet-ssl"), tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match="missing .* unexpected"):
        load("unetpp", tmp_path / "resnet.pth")


# --- Mask2Former (transformers) ------------------------------------------------------------------

def _m2f(**changes):
    """A tiny Mask2Former with trained-looking weights (`changes`: other M2FArch numbers)."""
    from transformers import Mask2FormerForUniversalSegmentation

    from zoo.plugins.mask2former import SWIN_BASE

    model = Mask2FormerForUniversalSegmentation(replace(SWIN_BASE.tiny(), **changes).config())
    model.load_state_dict(trained(model.state_dict()))
    return model


def test_mask2former_loads_save_pretrained_folders_state_dicts_and_cache(
        empty_caches: Path, tmp_path: Path):
    reference = _m2f()
    state = reference.state_dict()
    reference.save_pretrained(tmp_path / "folder")
    assert_holds(load("mask2former", tmp_path / "folder").module, state)
    assert_holds(load("mask2former", tmp_path / "folder" / "model.safetensors").module, state)
    put_in_hf_cache(empty_caches, "facebook/mask2former-swin-base-IN21k-ade-semantic",
                    {n: tmp_path / "folder" / n for n in ("config.json", "model.safetensors")})
    model = load("mask2former")
    assert_holds(model.module, state)
    assert "mask2former-swin-base-IN21k-ade-semantic" in model.weights_source


def test_mask2former_keeps_or_replaces_a_checkpoints_class_head(tmp_path: Path):
    reference = _m2f(num_labels=5)
    reference.save_pretrained(tmp_path / "ade-like")
    kept = load("mask2former", tmp_path / "ade-like")
    assert kept.module.config.num_labels == 5
    assert_holds(kept.module, reference.state_dict())
    relabelled = load("mask2former", tmp_path / "ade-like", labels=2)
    assert relabelled.module.class_predictor.out_features == 3  # 2 labels + "no object"
    features = {k: v for k, v in reference.state_dict().items()
                if not k.startswith(("class_predictor.", "criterion."))}
    assert_holds(relabelled.module, features)


def test_mask2former_rejects_a_different_architecture_or_file(tmp_path: Path):
    other = _m2f(queries=4)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(WeightsError, match=r"num_queries 4 \(expected 8\)"):
        load("mask2former", tmp_path / "other")
    torch.save(tiny_state("unetpp"), tmp_path / "unetpp.pth")
    with pytest.raises(WeightsError, match="not a Mask2FormerForUniversalSegmentation"):
        load("mask2former", tmp_path / "unetpp.pth")
