"""Weights from a real-layout Hugging Face cache written by the upstream library's own save
functions (timm `save_for_hf`, transformers `save_pretrained`), found offline, with provenance,
and features equal to the library's own forward on the library's own preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import run_zoo
from tests.test_generic_conformance import one_thread, write_hf_repo  # noqa: F401 - autouse fixture: one torch thread for tiny builds
from zoo.model.weights import sha256_of

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def write_timm_repo(cache: Path, name: str) -> Path:
    """timm's save_for_hf (random weights, not the fixed-seed init) in the hub cache layout of
    the tag's hf_hub_id."""
    import timm
    from timm.models import get_pretrained_cfg
    from timm.models._hub import save_for_hf

    repo = get_pretrained_cfg(name).hf_hub_id
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / COMMIT
    torch.manual_seed(123)
    save_for_hf(timm.create_model(name), str(snapshot), safe_serialization=True)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return snapshot


def timm_reference(snapshot: Path, name: str, images: list) -> list[torch.Tensor]:
    """timm's own load, transform and forward_intermediates (NLC, prefix tokens first)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(
        file=str(snapshot / "model.safetensors"))).eval()
    transform = create_transform(**resolve_data_config(model=model))
    x = torch.stack([transform(im.convert("RGB")) for im in images])
    with torch.no_grad():
        feats = model.forward_intermediates(x, intermediates_only=True, output_fmt="NLC",
                                            return_prefix_tokens=True)
    return [torch.cat([p, t], 1) for t, p in feats]


def test_timm_weights_found_offline_with_provenance_and_upstream_features(
        hf_cache: Path) -> None:
    name = "test_vit.r160_in1k"
    snapshot = write_timm_repo(hf_cache, name)
    model = zoo.load(f"timm/{name}")
    prov = model.provenance()
    weights = snapshot / "model.safetensors"
    assert prov["random_init"] is False
    assert str(weights) in prov["weights_source"] or str(weights.resolve()) in \
        prov["weights_source"]
    assert prov["weights_sha256"] == sha256_of(weights)
    assert prov["extraction"] == "forward_intermediates"
    assert prov["pretrained_cfg"]["hf_hub_id"] == "timm/test_vit.r160_in1k"
    data = zoo.dataset("samples")
    images = [data.image(i) for i in range(3)]
    reference = timm_reference(snapshot, name, images)
    blocks = [n for n in model.layers if n.startswith("blocks.")]
    ours = model.forward_layers(model.preprocess(images), blocks)
    for ref, layer in zip(reference, blocks):
        torch.testing.assert_close(ours[layer], ref)  # float32 defaults
    prefix = model.layers[blocks[-1]].prefix_tokens
    assert prefix == 1
    # gap: the mean over patch tokens only, the class token left out
    feats = zoo.extract(model, data.subset(range(3)), layers=[blocks[-1]], reduction="gap",
                        cache=False)
    expected = reference[-1][:, prefix:].mean(1).numpy()
    np.testing.assert_allclose(feats[blocks[-1]].data, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # two CLI subprocesses; the library path is tested in-process above/below
def test_cli_extract_timm_and_hf_from_cache_offline(hf_cache: Path, tmp_path: Path) -> None:
    from transformers import Dinov2Config

    write_timm_repo(hf_cache, "test_vit.r160_in1k")
    write_hf_repo(hf_cache, "tiny-org/dinov2-tiny", Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8))
    env = {"HF_HUB_CACHE": str(hf_cache), "HF_HUB_OFFLINE": "1"}
    for model_id in ("timm/test_vit.r160_in1k", "hf/tiny-org/dinov2-tiny"):
        out = tmp_path / model_id.replace("/", "_")
        result = run_zoo("extract", model_id, "--data", "samples", "--out", str(out), env=env)
        assert result.returncode == 0, result.stderr
        assert str(hf_cache) in result.stdout, result.stdout
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["provenance"]["random_init"] is False, manifest


def test_hf_features_equal_transformers_forward(hf_cache: Path) -> None:
    from transformers import AutoImageProcessor, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64,
                                       image_size=32, patch_size=8, num_register_tokens=4)
    snapshot = write_hf_repo(hf_cache, "tiny-org/dinov2-reg-tiny", config, seed=5)
    model = zoo.load("hf/tiny-org/dinov2-reg-tiny")
    prov = model.provenance()
    assert prov["weights_source"].startswith(str(snapshot)) and not prov["random_init"]
    assert prov["weights_sha256"] == sha256_of(snapshot)
    data = zoo.dataset("samples")
    images = [data.image(i) for i in range(2)]
    processor = AutoImageProcessor.from_pretrained(str(snapshot), local_files_only=True)
    x = processor(images=images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(model.preprocess(images), x, rtol=0, atol=0)
    reference = Dinov2WithRegistersModel.from_pretrained(str(snapshot)).eval()
    with torch.no_grad():
        states = reference(pixel_values=x, output_hidden_states=True).hidden_states
    ours = model.forward_layers(x, list(model.layers))
    for i, state in enumerate(states):
        torch.testing.assert_close(ours[f"hidden_states.{i}"], state)
    assert model.layers["hidden_states.2"].prefix_tokens == 5  # class + 4 registers
    assert model.layers["hidden_states.2"].stride == 8  # 32 px / 8 px patches: a 4x4 grid
