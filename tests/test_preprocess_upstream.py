"""zoo's input tensors are the upstream library's own, on every bundled photograph, for the default
model of every family: timm's resolved data config and transform (DINOv2, MAE), open_clip's
preprocess (CLIP), torchvision's evaluation preset (SSL ResNet-50; the study's 128 px setting for
UNet++ and Mask2Former). Overrides of size / crop_pct are honoured, recorded and keyed."""

from __future__ import annotations

import functools

import pytest
import torch

from zoo.data.resolve import open_dataset
from zoo.registry.host import get_registry

EXACT = dict(rtol=0.0, atol=1e-6)  # same library, same operations: bit-identical in practice


@functools.cache
def photos() -> tuple:
    data = open_dataset("samples")
    return tuple(data.image(i) for i in range(len(data)))


def timm_transform(name: str, **args):
    """timm's own: resolve_data_config on the checkpoint's pretrained config, create_transform."""
    import timm
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config(args, pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    return cfg, create_transform(**cfg)


def torchvision_preset(crop: int, resize: int):
    """torchvision's ImageNet evaluation preset (what its weights' `.transforms()` return)."""
    from torchvision.transforms._presets import ImageClassification

    return ImageClassification(crop_size=crop, resize_size=resize)


def open_clip_transform():
    """open_clip's eval preprocess for ViT-B-16 (create_model_and_transforms, no weights)."""
    import open_clip

    return open_clip.create_model_and_transforms("ViT-B-16", pretrained=None)[2]


def zoo_model(family: str):
    """The family's default spec, built tiny (cheap) at its full input size: the transform is the
    default model's; only the network is reduced."""
    spec = get_registry().model(family)
    model = spec.load(random_init=True, tiny=True, size=spec.input.size)
    pixels = {k: v for k, v in model.input.key().items() if k != "override"}
    assert pixels == {k: v for k, v in spec.input.key().items() if k != "override"}
    return model


UPSTREAM = {
    "dinov2": lambda: timm_transform("vit_base_patch14_reg4_dinov2.lvd142m",
                                     input_size=(3, 224, 224))[1],
    "mae": lambda: timm_transform("vit_base_patch16_224.mae")[1],
    "clip": open_clip_transform,
    "resnet-ssl": lambda: torchvision_preset(224, 256),
    "unetpp": lambda: torchvision_preset(128, 128),
    "mask2former": lambda: torchvision_preset(128, 128),
}


@pytest.mark.parametrize("family", sorted(UPSTREAM))
def test_default_inputs_equal_the_upstream_transform_on_every_bundled_photo(family: str):
    model = zoo_model(family)
    upstream = UPSTREAM[family]()
    images = photos()
    ours = model.preprocess(images)
    theirs = torch.stack([upstream(im.convert("RGB")) for im in images])
    assert ours.shape == theirs.shape == (16, 3, model.input.size, model.input.size)
    torch.testing.assert_close(ours, theirs, **EXACT)


@pytest.mark.parametrize("family, name, args", [
    ("dinov2", "vit_base_patch14_reg4_dinov2.lvd142m", {"input_size": (3, 224, 224)}),
    ("dinov2/vitb14", "vit_base_patch14_dinov2.lvd142m", {"input_size": (3, 224, 224)}),
    ("mae", "vit_base_patch16_224.mae", {}),
    ("resnet-ssl/resnet50.supervised", "resnet50.tv_in1k", {}),
])
def test_registered_transforms_are_timms_resolved_configs(family: str, name: str, args: dict):
    cfg, _ = timm_transform(name, **args)
    ours = get_registry().model(family).input
    assert (ours.size, ours.crop_pct, ours.interpolation) == (cfg["input_size"][-1],
                                                             cfg["crop_pct"], cfg["interpolation"])
    torch.testing.assert_close(torch.tensor(ours.mean), torch.tensor(cfg["mean"]), rtol=0, atol=0)
    torch.testing.assert_close(torch.tensor(ours.std), torch.tensor(cfg["std"]), rtol=0, atol=0)


def test_clip_transform_is_open_clips_preprocess_config():
    import open_clip

    model = open_clip.create_model("ViT-B-16", pretrained=None)
    cfg = model.visual.preprocess_cfg
    ours = get_registry().model("clip").input
    assert ((ours.size, ours.size), ours.interpolation, ours.resize) == (
        tuple(cfg["size"]), cfg["interpolation"], cfg["resize_mode"])
    assert ours.mean == tuple(cfg["mean"]) and ours.std == tuple(cfg["std"])


def test_size_and_crop_overrides_follow_upstream_and_are_recorded_in_the_key():
    model = get_registry().model("mae").load(random_init=True, tiny=True, size=256,
                                             crop_pct=0.875)
    assert model.input.override == "size=256,crop_pct=0.875"
    _, upstream = timm_transform("vit_base_patch16_224.mae", input_size=(3, 256, 256),
                                 crop_pct=0.875)
    images = photos()[:4]
    torch.testing.assert_close(model.preprocess(images),
                               torch.stack([upstream(im) for im in images]), **EXACT)
    default = get_registry().model("mae").load(random_init=True, tiny=True)
    assert model.input.key() != default.input.key()
    assert model.provenance()["preprocessing"]["override"] == "size=256,crop_pct=0.875"
    out = model.forward_layers(model.preprocess(images), ["block0"])["block0"]
    assert out.shape[1] == 1 + (256 // 16) ** 2  # the network runs at the overridden size


def test_crop_override_on_clip_leaves_open_clips_builder_for_torchvisions():
    model = get_registry().model("clip").load(random_init=True, tiny=True, crop_pct=0.875)
    assert model.input.library == "torchvision" and model.input.resize_size == 36
    x = model.preprocess(photos()[:2])
    assert x.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("family, size, message", [
    ("unetpp", 100, "multiple of 32"), ("mask2former", 200, "multiple of 32"),
    ("dinov2", 230, "multiple of the patch size 14")])
def test_sizes_a_family_cannot_take_are_clear_errors(family: str, size: int, message: str):
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match=message):
        get_registry().model(family).load(random_init=True, tiny=True, size=size)


@pytest.mark.parametrize("family, size", [("unetpp", 96), ("mask2former", 96)])
def test_segmentation_families_run_at_any_multiple_of_32(family: str, size: int):
    model = get_registry().model(family).load(random_init=True, tiny=True, size=size)
    x = model.preprocess(photos()[:1])
    assert x.shape[-1] == size
    out = model.forward_layers(x, [next(iter(model.layers))], stop_early=True)
    info = next(iter(model.layers.values()))
    assert out[info.name].shape[1] == size // info.stride
