"""The four generic families in one matrix and one comparison at random init (tiny builds): every
pair scored, prefix tokens left out of `gap`, token grids right under `grid:K`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo

# fixtures: one torch thread for this module's tiny builds (autouse), the tiny open_clip configs
from tests.test_generic_conformance import one_thread, tiny_open_clip, write_hf_repo  # noqa: F401

MODELS = ["timm/test_vit", "hf/tiny-org/dinov2-tiny", "open_clip/tiny-ViT",
          "torchvision/squeezenet1_1"]


@pytest.fixture
def hf_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants
    from transformers import Dinov2WithRegistersConfig

    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    config = Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, image_size=32, patch_size=8,
                                       num_register_tokens=4)
    write_hf_repo(cache, "tiny-org/dinov2-tiny", config)


def test_matrix_of_the_four_generic_families(hf_tiny: None, tiny_open_clip: list[str],  # noqa: F811 - the fixture
                                             tmp_path: Path) -> None:
    result = zoo.matrix(MODELS, "synthetic:6", "cka", random_init=True, run=tmp_path / "run")
    assert result.models == MODELS
    n = len(result.labels)
    assert result.values.shape == (n, n)
    assert np.isfinite(np.diag(result.values)).all()
    np.testing.assert_allclose(np.diag(result.values), 1.0, atol=1e-5)


@pytest.mark.parametrize("model_id,layer,prefix", [("hf/tiny-org/dinov2-tiny",
                                                    "hidden_states.2", 5),
                                                   ("timm/test_vit", "blocks.1", 1),
                                                   ("open_clip/tiny-ViT", "resblocks.1", 1)])
def test_gap_leaves_prefix_tokens_out_and_grid_pools_patches(
        hf_tiny: None, tiny_open_clip: list[str], model_id: str, layer: str,  # noqa: F811
        prefix: int) -> None:
    model = zoo.load(model_id, random_init=True)
    data = zoo.dataset("synthetic:3")
    full = zoo.extract(model, data, layers=layer, reduction="none", cache=False)[layer].data
    assert model.layers[layer].prefix_tokens == prefix
    gap = zoo.extract(model, data, layers=layer, reduction="gap", cache=False)[layer].data
    np.testing.assert_allclose(gap, full[:, prefix:].mean(1), rtol=1e-5, atol=1e-6)
    side = int(round((full.shape[1] - prefix) ** 0.5))
    assert side * side == full.shape[1] - prefix
    assert model.layers[layer].stride * side == model.input.size
    grid = zoo.extract(model, data, layers=layer, reduction="grid:2", cache=False)[layer].data
    maps = torch.from_numpy(full[:, prefix:]).reshape(3, side, side, -1).permute(0, 3, 1, 2)
    pooled = torch.nn.functional.adaptive_avg_pool2d(maps, 2).permute(0, 2, 3, 1).reshape(3, -1)
    np.testing.assert_allclose(grid, pooled.numpy(), rtol=1e-5, atol=1e-6)
