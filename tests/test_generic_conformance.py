"""The conformance sample: generic-family models built at random init (smallest configs, tiny
inputs) pass `zoo check`'s checks, including equality with the library's intermediates API.

Sample: 47 timm architectures, 9 transformers backbones from tiny configs written to a Hugging
Face cache layout, 4 open_clip towers from tiny configs, 7 torchvision models (4 more marked
slow).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoo.model.conformance import assert_conforms, check_model

# name -> build options; families named in the issue: ViT, DeiT (distillation token), DINOv2
# with registers, ConvNeXt, ResNet, EfficientNet, Swin, MaxViT, EVA, BEiT. timm's own `test_*`
# architectures, `tiny` (depth 2), smaller inputs (`size`) and config overrides (`model_args`,
# passed to timm.create_model) keep every build small: all of it runs in `make test`.
TIMM_SAMPLE = {
    "test_byobnet": {}, "test_coatnet": {}, "test_convnext": {}, "test_convnext2": {},
    "test_convnext3": {}, "test_efficientnet": {}, "test_efficientnet_evos": {},
    "test_efficientnet_gn": {}, "test_efficientnet_ln": {}, "test_mambaout": {},
    "test_maxvit": {}, "test_nfnet": {}, "test_resnet": {}, "test_vit": {}, "test_vit2": {},
    "test_vit3": {}, "test_vit4": {}, "test_vit_relpos": {},
    "vit_tiny_patch16_224": {"tiny": True}, "deit_tiny_distilled_patch16_224": {"tiny": True},
    "vit_small_patch14_reg4_dinov2": {"tiny": True, "size": 112},
    "eva02_tiny_patch14_224": {"tiny": True}, "flexivit_small": {"tiny": True},
    "vit_small_patch16_224": {"tiny": True}, "deit3_small_patch16_224": {"tiny": True},
    "xcit_nano_12_p16_224": {"tiny": True},
    "beit_base_patch16_224": {"tiny": True, "model_args": {"embed_dim": 192, "num_heads": 3}},
    "beitv2_base_patch16_224": {"tiny": True,
                                "model_args": {"embed_dim": 192, "num_heads": 3}},
    "swin_tiny_patch4_window7_224": {"model_args": {"embed_dim": 32,
                                                    "num_heads": (1, 2, 4, 8)}},
    "maxvit_pico_rw_256": {"size": 128}, "resnet10t": {}, "resnet18": {"size": 64},
    "efficientnet_b0": {"size": 96}, "convnext_atto": {}, "convnextv2_atto": {},
    "mobilenetv3_small_050": {}, "regnetx_002": {}, "ghostnet_050": {}, "lcnet_050": {},
    "mobilevit_xxs": {}, "edgenext_xx_small": {}, "efficientvit_b0": {},
    "fastvit_t8": {"size": 128}, "pvt_v2_b0": {"size": 128},
    # regressions the sweep found: Hiera's forward_intermediates stops early by default (the
    # pooled embedding needs every block); RegNet's `depth` is its total block count and PiT's a
    # per-stage list (`tiny` builds them as they are)
    "hiera_tiny_224": {"size": 128}, "regnety_002": {"tiny": True}, "pit_ti_224": {"tiny": True},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny builds: intra-op threads cost more in hand-offs than they save, and on a shared
    2-core machine they cost ten times the arithmetic."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shared_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo-index")


@pytest.fixture(autouse=True)
def shared_index(shared_index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One ZOO_CACHE_DIR (so one timm/open_clip/torchvision name index) for this module's
    tests, instead of a rebuild per test."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(shared_index_dir))


@pytest.mark.parametrize("arch", sorted(TIMM_SAMPLE))
def test_timm_sample_conforms(arch: str) -> None:
    report = assert_conforms(f"timm/{arch}", **TIMM_SAMPLE[arch])
    assert report.extraction in ("forward_intermediates", "feature_info hooks")


def test_timm_sample_is_broad() -> None:
    """At least 40 architectures, all in the fast suite, from the families the issue names (by
    the timm module defining them), with a distillation token and registers among them."""
    from zoo.plugins.timm_family import type_name

    assert len(TIMM_SAMPLE) >= 40
    modules = {type_name(arch) for arch in TIMM_SAMPLE}
    assert {"vision_transformer", "deit", "convnext", "resnet", "efficientnet",
            "swin_transformer", "maxxvit", "eva", "beit"} <= modules, modules
    assert any("distilled" in a for a in TIMM_SAMPLE)
    assert any("reg4_dinov2" in a for a in TIMM_SAMPLE)


@pytest.mark.parametrize("arch,prefix", [("deit_tiny_distilled_patch16_224", 2),
                                         ("vit_small_patch14_reg4_dinov2", 5),
                                         ("vit_tiny_patch16_224", 1)])
def test_timm_prefix_tokens_from_the_model(arch: str, prefix: int) -> None:
    report = check_model(f"timm/{arch}", **TIMM_SAMPLE[arch])
    blocks = [c for c in report.layers if c.layer.startswith("blocks.")]
    assert blocks and all(c.prefix_tokens == prefix for c in blocks)
    side = int(blocks[0].grid.split("x")[0])
    assert blocks[0].shape[1] == prefix + side * side  # known layout: prefix first, then grid


def test_timm_model_args_reconfigure_the_build() -> None:
    """`model_args` reach timm.create_model, key the features apart and are recorded; a keyword
    the architecture does not take is a ZooError naming it."""
    import zoo
    from zoo.errors import ZooError

    default = zoo.load("timm/test_vit", random_init=True)
    narrow = zoo.load("timm/test_vit", random_init=True, model_args={"embed_dim": 32})
    assert default.layers["blocks.0"].channels == 64 and narrow.layers["blocks.0"].channels == 32
    assert narrow.fingerprint != default.fingerprint
    # random init is keyed by the weights as built (a timm upgrade that changes init re-extracts)
    from zoo.model.wrapped import state_fingerprint

    assert default.fingerprint.endswith(":" + state_fingerprint(default.module)[:16])
    assert narrow.provenance()["model_args"] == {"embed_dim": 32}
    with pytest.raises(ZooError, match=r"model_args \['embed_dimm'\]"):
        zoo.load("timm/test_vit", random_init=True, model_args={"embed_dimm": 32})
    with pytest.raises(ZooError, match="must be a dict"):
        zoo.load("timm/test_vit", random_init=True, model_args=[32])


# --- transformers: tiny configs saved as a real HF cache (save_pretrained) -------------------

def _tiny_hf_configs() -> dict[str, tuple[object, int]]:
    """repo -> (tiny config, expected prefix tokens of its token layers)."""
    import transformers as tf

    vit = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               image_size=32, patch_size=8)
    return {
        "vit": (tf.ViTConfig(**vit), 1),
        "deit": (tf.DeiTConfig(**vit), 2),
        "dinov2": (tf.Dinov2Config(**vit), 1),
        "dinov2-with-registers": (tf.Dinov2WithRegistersConfig(**vit, num_register_tokens=4),
                                  5),
        "beit": (tf.BeitConfig(**vit), 1),
        "clip": (tf.CLIPConfig(vision_config=vit, text_config=dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)),
            1),
        "siglip": (tf.SiglipConfig(vision_config=vit, text_config=dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)),
            0),
        "convnext": (tf.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                                       image_size=32), 0),
        "swin": (tf.SwinConfig(image_size=32, patch_size=2, embed_dim=8, depths=[1, 1],
                               num_heads=[1, 2], window_size=4), 0),
    }


def write_hf_repo(cache: Path, repo: str, config: object, seed: int = 0) -> Path:
    """A model of `config` with random weights, saved by transformers' save_pretrained into the
    hub cache layout (refs/main -> snapshots/<commit>), with a 32 px image processor."""
    import torch
    from transformers import AutoModel, ViTImageProcessor

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(snapshot)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(snapshot)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_transformers_sample_conforms(hf_cache: Path) -> None:
    configs = _tiny_hf_configs()
    assert len(configs) >= 6
    for name, (config, _) in configs.items():
        write_hf_repo(hf_cache, f"tiny/{name}", config)
    for name, (_, prefix) in configs.items():
        report = assert_conforms(f"hf/tiny/{name}", random_init=False)
        tokens = [c for c in report.layers if c.layout == "NLC"]
        assert all(c.prefix_tokens == prefix for c in tokens), (name, report.rows())
        assert report.size == 32 and "HF" not in report.extraction


# --- open_clip: tiny configs of four tower kinds ----------------------------------------------

OPEN_CLIP_TINY = {
    "tiny-ViT": {"vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                "head_width": 16}},
    "tiny-RN": {"vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8,
                               "head_width": 8}},
    "tiny-timm-vit": {"vision_cfg": {"image_size": 32, "timm_model_name": "test_vit",
                                     "timm_model_pretrained": False, "timm_pool": "",
                                     "timm_proj": "linear"}},
    "tiny-timm-convnext": {"vision_cfg": {"image_size": 32, "timm_model_name": "test_convnext",
                                          "timm_model_pretrained": False,
                                          "timm_pool": "avg", "timm_proj": "linear"}},
}
TEXT = {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}


@pytest.fixture
def tiny_open_clip(tmp_path: Path) -> list[str]:
    import open_clip

    for name, cfg in OPEN_CLIP_TINY.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"embed_dim": 16, "text_cfg": TEXT, **cfg}))
        open_clip.add_model_config(path)
    return list(OPEN_CLIP_TINY)


def test_open_clip_sample_conforms(tiny_open_clip: list[str]) -> None:
    for arch in tiny_open_clip:
        report = assert_conforms(f"open_clip/{arch}")
        assert report.extraction == "visual.forward_intermediates"
        assert any(c.upstream.startswith("equal") for c in report.layers)
    vit = check_model("open_clip/tiny-ViT")
    assert {c.prefix_tokens for c in vit.layers if c.layout == "NLC"} == {1}


# --- torchvision ------------------------------------------------------------------------------

TORCHVISION_FAST = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "mnasnet0_5",
                    "squeezenet1_1", "regnet_x_400mf", "vit_b_16"]


@pytest.mark.parametrize("name", TORCHVISION_FAST)
def test_torchvision_sample_conforms(name: str) -> None:
    report = assert_conforms(f"torchvision/{name}")
    assert all(c.upstream.startswith("equal") for c in report.layers)  # FX extractor


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t", "convnext_tiny", "efficientnet_b0", "maxvit_t"])
def test_torchvision_larger_models_conform(name: str) -> None:
    assert_conforms(f"torchvision/{name}")
