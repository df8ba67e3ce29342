"""The MAE release file `mae_pretrain_vit_base.pth` (`{'model': encoder}`) is read as the original
release wherever it is found (torch hub cache or --weights), preprocessed with MAE's evaluation
transform (Resize 256 bicubic, CenterCrop 224, ImageNet mean/std: MAE's util/datasets.py), and
recorded so in the provenance and in `zoo info`; timm-layout files keep timm's transform."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_zoo
from PIL import Image

from zoo.data.resolve import open_dataset
from zoo.registry.host import get_registry

RELEASE = "mae_pretrain_vit_base.pth"
# non-square, both orientations, thin and tiny: the resize and crop offsets all differ
SIZES = [(451, 300), (300, 451), (640, 97), (31, 260), (19, 13)]


def mae_eval_transform():
    """MAE's evaluation transform, as util/datasets.py `build_transform(is_train=False)` writes it
    for input_size 224 (crop_pct 224/256, size int(224 / crop_pct), PIL bicubic)."""
    import PIL
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from torchvision import transforms

    crop_pct = 224 / 256
    size = int(224 / crop_pct)
    return transforms.Compose([transforms.Resize(size, interpolation=PIL.Image.BICUBIC),
                               transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)])


def image_folder(folder: Path) -> Path:
    """Photograph-like non-square RGB images (smooth gradients plus noise), written as PNG."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(SIZES):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1)
        pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
    return folder


def release_file(path: Path, tiny: bool) -> dict[str, torch.Tensor]:
    """The release layout: {'model': the encoder's state dict}, values unlike any init."""
    module = get_registry().model("mae").load(random_init=True, tiny=tiny).module
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return state


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty TORCH_HOME and HF cache (in this process and the CLI's)."""
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    yield tmp_path / "torch" / "hub" / "checkpoints"
    torch.hub.set_dir(previous)


@pytest.mark.slow
def test_zoo_extract_reads_the_cached_release_with_maes_eval_transform(torch_home: Path,
                                                                       tmp_path: Path):
    state = release_file(torch_home / RELEASE, tiny=False)  # full size: the CLI builds ViT-B
    data = image_folder(tmp_path / "images")
    out = tmp_path / "out"
    result = run_zoo("extract", "mae", "--data", str(data), "--layers", "embed", "--reduce",
                     "flatten", "--no-cache", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    prov = json.loads(result.stdout)["provenance"]
    assert prov["weights_format"] == "original release"
    assert prov["weights_source"].startswith(str(torch_home / RELEASE))
    assert prov["preprocessing"] == {
        "size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "interpolation": "bicubic", "crop_pct": 0.875, "resize": "shortest",
        "library": "torchvision", "override": ""}
    # the transform the CLI recorded gives MAE's input tensor, bit for bit
    from zoo.model.transforms import build_transform
    from zoo.registry.specs import InputConfig

    recorded = InputConfig(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in prov["preprocessing"].items()})
    dataset = open_dataset(str(data))
    images = [dataset.image(i) for i in range(len(dataset))]
    assert {im.size for im in images} == set(SIZES)
    upstream = torch.stack([mae_eval_transform()(im) for im in images])
    assert torch.equal(build_transform(recorded)(images), upstream)
    # and the CLI's tokens are those of that tensor and the file's weights (MAE's patch
    # embedding, class token and position embeddings; timm's crop_pct 0.9 input is far off)
    assert json.loads((out / "ids.json").read_text()) == list(dataset.ids)
    patches = torch.nn.functional.conv2d(upstream, state["patch_embed.proj.weight"],
                                         state["patch_embed.proj.bias"], stride=16)
    tokens = torch.cat([state["cls_token"].expand(len(images), -1, -1),
                        patches.flatten(2).transpose(1, 2)], 1) + state["pos_embed"]
    cli = torch.from_numpy(np.load(out / "embed.npy"))
    torch.testing.assert_close(cli, tokens.flatten(1), rtol=1e-5, atol=1e-5)


def test_the_cached_release_runs_maes_eval_transform_bit_for_bit(torch_home: Path,
                                                                  tmp_path: Path):
    release_file(torch_home / RELEASE, tiny=True)
    zmodel = get_registry().model("mae").load(tiny=True, size=224)  # tiny network, 224 input
    assert zmodel.provenance()["weights_format"] == "original release"
    dataset = open_dataset(str(image_folder(tmp_path / "images")))
    images = [dataset.image(i) for i in range(len(dataset))]
    upstream = torch.stack([mae_eval_transform()(im) for im in images])
    assert torch.equal(zmodel.preprocess(images), upstream)
    timm_like = torch.stack([build_timm_mae()(im) for im in images])
    assert (timm_like - upstream).abs().max() > 0.5  # the transform the issue found instead


def build_timm_mae():
    """timm's transform for vit_base_patch16_224.mae (crop_pct 0.9): what must not be used."""
    import timm
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg(
        "vit_base_patch16_224.mae").to_dict())
    return create_transform(**cfg)


def test_the_release_layout_is_the_release_wherever_it_is_found(torch_home: Path,
                                                               tmp_path: Path):
    state = release_file(torch_home / RELEASE, tiny=True)
    cached = get_registry().model("mae").load(tiny=True)
    prov = cached.provenance()
    assert prov["weights_format"] == "original release" and "torch hub cache" in \
        prov["weights_source"]
    assert (prov["preprocessing"]["crop_pct"], prov["preprocessing"]["library"]) == (
        0.875, "torchvision")
    assert "crop_pct 0.875" in prov["transform"]
    for key, value in state.items():
        assert torch.equal(cached.module.state_dict()[key], value), key
    renamed = tmp_path / "encoder.pth"  # --weights under another name: the layout decides
    torch.save({"model": state}, renamed)
    given = get_registry().model("mae").load(weights=str(renamed), tiny=True).provenance()
    assert given["weights_format"] == "original release"
    assert given["preprocessing"] == prov["preprocessing"]
    torch.save(state, tmp_path / "bare.pth")  # timm's layout (a bare state dict) stays timm's
    timm_like = get_registry().model("mae").load(weights=str(tmp_path / "bare.pth"),
                                                tiny=True).provenance()
    assert timm_like["weights_format"] == "timm"
    assert (timm_like["preprocessing"]["crop_pct"], timm_like["preprocessing"]["library"]) == (
        0.9, "timm")


def test_a_bare_state_dict_under_the_release_name_is_read_by_where_it_was_found(
        torch_home: Path):
    """Keys alone cannot tell the encoder from timm's: the torch hub name decides."""
    module = get_registry().model("mae").load(random_init=True, tiny=True).module
    torch_home.mkdir(parents=True)
    torch.save(module.state_dict(), torch_home / RELEASE)
    prov = get_registry().model("mae").load(tiny=True).provenance()
    assert prov["weights_format"] == "original release"
    assert prov["preprocessing"]["crop_pct"] == 0.875


def test_zoo_info_shows_the_release_transform_when_the_release_is_what_loads(torch_home: Path):
    before = json.loads(run_zoo("info", "mae", "--json").stdout)
    assert before["loads"] is None and before["input"]["library"] == "timm"
    release_file(torch_home / RELEASE, tiny=True)
    result = run_zoo("info", "mae", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["loads"] == str(torch_home / RELEASE)
    assert info["input"]["crop_pct"] == 0.875 and info["input"]["library"] == "torchvision"
    release = next(s for s in info["sources"] if s["entry"].startswith("torch hub cache"))
    assert release["format"] == "original release" and release["chosen"]
    assert release["input"] == info["input"]
    timm = next(s for s in info["sources"] if "timm/" in s["entry"])
    assert timm["format"] == "timm" and not timm["chosen"] and timm["input"]["crop_pct"] == 0.9
    text = run_zoo("info", "mae")
    assert f"loads now: {torch_home / RELEASE}" in text.stdout
    assert "[original release]" in text.stdout and "crop_pct 0.875" in text.stdout
