"""What zoo says and offers about weights, on checkpoints written here in the upstream layouts:
`zoo info` shows the transform of the weights a load uses now; every command that loads weights
takes --trust-weights; transformers folders' pickled weights are refused in zoo's words and read
with --trust-weights; a missing module under --trust-weights is named; a plain pickle's refusal
names every call it would make; --size resizes position embeddings as each upstream does; the
README states how zoo's image decoding differs from `Image.open(...).convert("RGB")`."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_user_error, run_zoo

from zoo.data.resolve import open_dataset
from zoo.errors import WeightsError
from zoo.registry.host import get_registry

COMMIT = "0" * 40
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 forward passes through different (same-math) code
HOOK = '''from pathlib import Path


def rebuild(tensor, marker):
    """Unpickled as a call: touches `marker`, returns the tensor."""
    Path(marker).touch()
    return tensor
'''


@pytest.fixture(autouse=True)
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Empty HF and torch hub caches under tmp_path, for this process and the CLI's."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    yield tmp_path
    torch.hub.set_dir(previous)


class Rebuilt:
    """A tensor pickled as a call to `marker_hook.rebuild` (a module outside torch's allowlist)."""

    def __init__(self, tensor: torch.Tensor, marker: Path) -> None:
        self.tensor, self.marker = tensor, marker

    def __reduce__(self):
        import marker_hook

        return (marker_hook.rebuild, (self.tensor, str(self.marker)))


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder of an importable module `marker_hook` (on sys.path while the test runs)."""
    folder = tmp_path / "hook"
    folder.mkdir()
    (folder / "marker_hook.py").write_text(HOOK)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("marker_hook", None)


def forget(hook: Path) -> None:
    """Make `marker_hook` unimportable, as on a machine without the package."""
    sys.path.remove(str(hook))
    sys.modules.pop("marker_hook", None)


def with_hook(state: dict[str, torch.Tensor], marker: Path) -> dict[str, object]:
    """`state` with its first tensor pickled through marker_hook.rebuild."""
    first = next(iter(state))
    return {**state, first: Rebuilt(state[first], marker)}


def in_hf_cache(root: Path, repo: str, folder: Path) -> None:
    """Lay a save_pretrained folder out as huggingface_hub caches a download of `repo`."""
    entry = root / "hf" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, entry / "snapshots" / COMMIT)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(COMMIT)


def trained(module: torch.nn.Module, seed: int = 7) -> torch.nn.Module:
    """Redraw every float parameter (shapes kept) so loaded values cannot match an init."""
    g = torch.Generator().manual_seed(seed)
    module.load_state_dict({k: (torch.randn(v.shape, generator=g) * 0.2
                                if v.is_floating_point() else v)
                            for k, v in module.state_dict().items()})
    return module.eval()


def photos(n: int = 3) -> list:
    data = open_dataset("samples")
    return [data.image(i) for i in range(n)]


def vit_mae(image_size: int = 80):
    """A tiny transformers ViTMAEModel (5x5 native grid) and its image processor."""
    from transformers import ViTImageProcessor, ViTMAEConfig, ViTMAEModel

    model = trained(ViTMAEModel(ViTMAEConfig(hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=128,
                                             image_size=image_size, patch_size=16)))
    return model, ViTImageProcessor(size={"height": image_size, "width": image_size},
                                    resample=3)


def clip_vision(image_size: int = 32):
    """A tiny transformers CLIPVisionModel (2x2 native grid) and its image processor."""
    import transformers

    model = trained(transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        image_size=image_size, patch_size=16, hidden_act="quick_gelu")))
    return model, transformers.CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size,
                                                      "width": image_size})


def save_folder(model, processor, folder: Path, pickled: bool = False,
                state: dict | None = None) -> Path:
    """save_pretrained; with `pickled`, the weights as transformers 4 wrote them by default
    (`torch.save(state_dict)` to pytorch_model.bin), optionally a given `state`."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if pickled:
        (folder / "model.safetensors").unlink()
        torch.save(state if state is not None else model.state_dict(),
                   folder / "pytorch_model.bin")
    return folder


# --- zoo info: the transform of the weights a load uses now ------------------------------------

@pytest.mark.parametrize("name, repo, build", [
    ("mae", "facebook/vit-mae-base", vit_mae),
    ("clip", "openai/clip-vit-base-patch16", clip_vision)])
def test_info_shows_the_transform_of_the_transformers_folder_that_loads(name, repo, build,
                                                                         caches):
    from zoo.model.candidates import weights_plan

    spec = get_registry().model(name)
    assert weights_plan(spec).input == spec.input and weights_plan(spec).chosen is None
    in_hf_cache(caches, repo, save_folder(*build(), caches / "folder"))
    plan = weights_plan(spec)
    assert plan.chosen is not None and plan.chosen.format == "transformers"
    loaded = spec.load(tiny=True)  # a processor folder brings its own size, tiny or not
    assert loaded.provenance()["weights_format"] == "transformers"
    assert plan.input.key() == loaded.input.key() and plan.input.library == "transformers"
    others = [c for c in plan.candidates if not c.chosen]
    assert all(c.found is None for c in others) and others[0].input == spec.input
    result = run_zoo("info", name, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["input"] == loaded.input.key() and info["loads"] == plan.chosen.found
    assert [s["chosen"] for s in info["sources"]] == [c.chosen for c in plan.candidates]


def test_info_picks_the_source_a_load_would_pick(caches):
    from zoo.model.candidates import weights_plan

    in_hf_cache(caches, "facebook/vit-mae-base", save_folder(*vit_mae(), caches / "folder"))
    hub = caches / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    module = get_registry().model("mae").load(random_init=True, tiny=True).module
    torch.save({"model": module.state_dict()}, hub / "mae_pretrain_vit_base.pth")
    spec = get_registry().model("mae")
    assert weights_plan(spec).chosen.format == "transformers"
    picked = weights_plan(spec, source="torch hub")
    assert picked.chosen.format == "original release" and picked.input.crop_pct == 0.875
    assert spec.load(tiny=True, source="torch hub").provenance()["weights_format"] == \
        "original release"
    with pytest.raises(WeightsError, match="matches 0 of the sources found"):
        weights_plan(spec, source="nowhere")


# --- --trust-weights wherever weights load ------------------------------------------------------

def _options(command) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", [])}


def test_every_command_that_loads_weights_takes_trust_weights():
    import click
    import typer

    from zoo.cli.app import build_app

    root = typer.main.get_command(build_app())
    commands = []
    stack = [("", root)]
    while stack:
        prefix, group = stack.pop()
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                stack.append((f"{prefix}{name} ", command))
            else:
                commands.append((prefix + name, command))
    loading = {n for n, c in commands if {"--weights", "--random-init"} & _options(c)}
    assert {"extract", "compare", "matrix", "cut", "align", "dissect", "train"} <= loading
    lacking = sorted(n for n in loading if "--trust-weights" not in _options(dict(commands)[n]))
    assert not lacking, f"commands that load weights without --trust-weights: {lacking}"


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["matrix", "toy/cnn", "toy/vit", "--weights", "toy/cnn={w}"],
    ["cut", "toy/cnn", "--weights", "{w}", "--layers", "stage1"],
    ["align", "toy/cnn", "--weights", "{w}", "--layers", "stage1,stage2", "--method",
     "procrustes"]])
def test_matrix_cut_and_align_refuse_then_honour_trust_weights(command, hook: Path,
                                                               tmp_path: Path):
    marker = tmp_path / "ran"
    state = get_registry().model("toy/cnn").load().module.state_dict()
    torch.save(with_hook(state, marker), tmp_path / "toy.pth")
    args = [a.format(w=tmp_path / "toy.pth") for a in command] + ["--data", "synthetic:4",
                                                                  "--no-cache"]
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    refused = run_zoo(*args, "--out", str(tmp_path / "refused"), env=env)
    assert_user_error(refused, "marker_hook.rebuild", "--trust-weights")
    assert not marker.exists() and not (tmp_path / "refused").exists()
    trusted = run_zoo(*args, "--trust-weights", "--out", str(tmp_path / "out"), env=env)
    assert trusted.returncode == 0, trusted.stderr
    assert marker.exists() and (tmp_path / "out").is_dir()


# --- transformers folders: zoo's refusal, --trust-weights honoured ------------------------------

@pytest.mark.parametrize("name, build", [("mae", vit_mae), ("clip", clip_vision)])
def test_transformers_folder_with_pickled_weights_is_refused_in_zoos_words_until_trusted(
        name, build, hook: Path, tmp_path: Path):
    model, processor = build()
    marker = tmp_path / "ran"
    folder = save_folder(model, processor, tmp_path / "folder", pickled=True,
                         state=with_hook(model.state_dict(), marker))
    spec = get_registry().model(name)
    with pytest.raises(WeightsError) as err:
        spec.load(weights=str(folder), tiny=True)
    message = str(err.value)
    assert not marker.exists()
    assert "\n" not in message and "Weights only load failed" not in message
    assert message.startswith(f"{folder / 'pytorch_model.bin'} pickles Python objects")
    assert "(marker_hook.rebuild)" in message
    assert message.endswith("pass trust_weights=True")  # raised in Python: Python's words
    zmodel = spec.load(weights=str(folder), tiny=True, trust_weights=True)
    assert marker.exists() and zmodel.provenance()["weights_format"] == "transformers"
    x = zmodel.preprocess(photos())
    if name == "mae":  # the reference: no masking, patches kept in raster order
        model.config.mask_ratio = 0.0
    with torch.no_grad():
        ref = model(pixel_values=x, output_hidden_states=True,
                    **({"noise": torch.arange(25.0).expand(len(x), -1)} if name == "mae"
                       else {}))
    out = zmodel.forward_layers(x, ["block1"])["block1"]
    torch.testing.assert_close(out, ref.hidden_states[2], **TOL)


def test_a_clean_pickled_transformers_folder_loads_without_trust(tmp_path: Path):
    model, processor = vit_mae()
    folder = save_folder(model, processor, tmp_path / "folder", pickled=True)
    zmodel = get_registry().model("mae").load(weights=str(folder), tiny=True)
    hf = model.state_dict()
    assert torch.equal(zmodel.module.state_dict()["cls_token"], hf["embeddings.cls_token"])


# --- --trust-weights with a module this Python lacks --------------------------------------------

def test_a_missing_module_under_trust_is_named_not_called_an_unreadable_file(hook: Path,
                                                                             tmp_path: Path):
    state = get_registry().model("toy/cnn").load().module.state_dict()
    torch.save(with_hook(state, tmp_path / "ran"), tmp_path / "toy.pth")
    model, processor = vit_mae()
    folder = save_folder(model, processor, tmp_path / "folder", pickled=True,
                         state=with_hook(model.state_dict(), tmp_path / "ran"))
    forget(hook)
    for name, path in (("toy/cnn", tmp_path / "toy.pth"), ("mae", folder)):
        with pytest.raises(WeightsError) as err:
            get_registry().model(name).load(weights=str(path), tiny=True, trust_weights=True)
        message = str(err.value)
        assert "not a torch.save" not in message and "\n" not in message
        assert "is a torch.save checkpoint" in message
        assert "need the module 'marker_hook', which is not installed here" in message
    assert not (tmp_path / "ran").exists()


# --- plain pickles: every call named --------------------------------------------------------------

class Payload:
    """Pickles as a call to os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle.dump", "legacy torch.save"])
def test_a_pickle_payload_refusal_names_the_call_it_would_make(writer: str, tmp_path: Path):
    marker = tmp_path / "ran"
    state = get_registry().model("toy/cnn").load().module.state_dict()
    checkpoint = {**state, "extra": Payload(marker)}  # tensors first: torch meets them first
    path = tmp_path / "x.pth"
    if writer == "pickle.dump":
        with open(path, "wb") as stream:
            pickle.dump(checkpoint, stream)
    else:
        torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError) as err:
        get_registry().model("toy/cnn").load(weights=str(path))
    message = str(err.value)
    assert not marker.exists()
    assert f"{os.system.__module__}.system" in message  # posix.system on Linux and macOS
    if writer == "pickle.dump":  # tensors pickled by pickle rebuild through torch.load
        assert "torch.storage._load_from_bytes" in message
    assert "trust_weights=True" in message  # raised in Python: Python's words


def test_a_trusted_plain_pickle_of_a_state_dict_loads(tmp_path: Path):
    state = trained(get_registry().model("toy/cnn").load().module).state_dict()
    with open(tmp_path / "w.pkl", "wb") as stream:
        pickle.dump(state, stream)
    zmodel = get_registry().model("toy/cnn").load(weights=str(tmp_path / "w.pkl"),
                                                  trust_weights=True)
    for key, value in state.items():
        assert torch.equal(zmodel.module.state_dict()[key], value), key


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_globals_lists_every_global_statically(protocol: int, tmp_path: Path):
    from collections import OrderedDict

    from zoo.model.pickles import is_plain_pickle, pickle_globals

    marker = tmp_path / "ran"
    obj = {"a": OrderedDict(x=1), "b": [Payload(marker), Payload(marker)], "c": Path("/x")}
    with open(tmp_path / "p.pkl", "wb") as stream:
        pickle.dump(obj, stream, protocol=protocol)
    found = pickle_globals(tmp_path / "p.pkl")
    assert {"collections.OrderedDict", f"{os.system.__module__}.system"} <= set(found)
    assert any(g.startswith("pathlib.") for g in found)
    assert is_plain_pickle(tmp_path / "p.pkl") and not marker.exists()


# --- --size: position embeddings resized as upstream ------------------------------------------

def test_mae_transformers_folder_at_another_size_interpolates_as_transformers(caches):
    model, processor = vit_mae()  # native 5x5 grid
    in_hf_cache(caches, "facebook/vit-mae-base", save_folder(model, processor,
                                                             caches / "folder"))
    zmodel = get_registry().model("mae").load(tiny=True, size=48)  # 3x3 grid
    x = zmodel.preprocess(photos())
    assert x.shape[-1] == 48
    model.config.mask_ratio = 0.0  # no masking, patches kept in raster order
    with torch.no_grad():
        ref = model(pixel_values=x, noise=torch.arange(9.0).expand(len(x), -1),
                    interpolate_pos_encoding=True, output_hidden_states=True)
    out = zmodel.forward_layers(x, list(zmodel.layers), stop_early=False)
    torch.testing.assert_close(out["embed"], ref.hidden_states[0], **TOL)
    torch.testing.assert_close(out["norm"], ref.last_hidden_state, **TOL)


def mae_interpolate_pos_embed(pos_embed: torch.Tensor, new_size: int) -> torch.Tensor:
    """facebookresearch/mae util/pos_embed.py `interpolate_pos_embed`, transcribed for a
    reference (bicubic to the new grid, align_corners=False, the class token kept)."""
    embedding_size = pos_embed.shape[-1]
    num_extra_tokens = 1
    orig_size = int((pos_embed.shape[-2] - num_extra_tokens) ** 0.5)
    extra_tokens = pos_embed[:, :num_extra_tokens]
    pos_tokens = pos_embed[:, num_extra_tokens:]
    pos_tokens = pos_tokens.reshape(-1, orig_size, orig_size, embedding_size).permute(0, 3, 1, 2)
    pos_tokens = torch.nn.functional.interpolate(
        pos_tokens, size=(new_size, new_size), mode="bicubic", align_corners=False)
    pos_tokens = pos_tokens.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((extra_tokens, pos_tokens), dim=1)


def test_mae_release_at_another_size_interpolates_as_maes_own_code(tmp_path: Path):
    module = trained(get_registry().model("mae").load(random_init=True, tiny=True).module)
    torch.save({"model": module.state_dict()}, tmp_path / "mae_pretrain_vit_base.pth")
    zmodel = get_registry().model("mae").load(weights=str(tmp_path / "mae_pretrain_vit_base.pth"),
                                             tiny=True, size=64)  # 4x4 on the native 5x5
    assert zmodel.provenance()["weights_format"] == "original release"
    vit = zmodel.module
    x = zmodel.preprocess(photos())
    with torch.no_grad():
        tokens = vit.patch_embed(x).flatten(1, 2)
        tokens = torch.cat([vit.cls_token.expand(len(x), -1, -1), tokens], 1)
        tokens = tokens + mae_interpolate_pos_embed(vit.pos_embed, 4)
        for block in vit.blocks:
            tokens = block(tokens)
        expected = vit.norm(tokens)
    out = zmodel.forward_layers(x, ["norm"])["norm"]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    from timm.layers import resample_abs_pos_embed  # timm's antialiased resampling differs

    with torch.no_grad():
        timm_pos = resample_abs_pos_embed(vit.pos_embed, (4, 4), num_prefix_tokens=1)
    assert not torch.allclose(timm_pos, mae_interpolate_pos_embed(vit.pos_embed, 4), atol=1e-4)


def test_transformers_clip_at_another_size_interpolates_as_transformers(caches):
    model, processor = clip_vision()  # native 2x2 grid
    in_hf_cache(caches, "openai/clip-vit-base-patch16", save_folder(model, processor,
                                                                    caches / "folder"))
    zmodel = get_registry().model("clip").load(tiny=True, size=48)  # 3x3 grid
    assert zmodel.provenance()["weights_format"] == "transformers"
    x = zmodel.preprocess(photos())
    assert x.shape[-1] == 48
    with torch.no_grad():
        ref = model(pixel_values=x, interpolate_pos_encoding=True, output_hidden_states=True)
    out = zmodel.forward_layers(x, list(zmodel.layers), stop_early=False)
    torch.testing.assert_close(out["embed"], ref.hidden_states[0], **TOL)
    for i in range(2):
        torch.testing.assert_close(out[f"block{i}"], ref.hidden_states[i + 1], **TOL)
    torch.testing.assert_close(out["embedding"], ref.pooler_output, **TOL)


# --- the README on image decoding ---------------------------------------------------------------

def test_readme_states_how_decoding_differs_from_pillow_convert_and_it_does(tmp_path: Path):
    import numpy as np
    from PIL import Image

    from zoo.data.dataset import to_rgb

    readme = " ".join((REPO / "README.md").read_text().split())
    assert 'Image.open(path).convert("RGB")' in readme
    for needle in ("EXIF orientation", "16-bit", "differ"):
        assert needle in readme[readme.index('Image.open(path).convert("RGB")') - 600:
                                readme.index('Image.open(path).convert("RGB")') + 600], needle
    deep = np.full((4, 6), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    Image.fromarray(deep).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert np.asarray(to_rgb(im))[0, 0].tolist() == [128, 128, 128]
    with Image.open(tmp_path / "deep.png") as im:
        assert np.asarray(im.convert("RGB"))[0, 0].tolist() == [255, 255, 255]
    upright = np.zeros((4, 6, 3), dtype=np.uint8)
    upright[0, :, 0] = 255  # a red top row
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    Image.fromarray(upright).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    with Image.open(tmp_path / "rotated.jpg") as im:
        assert to_rgb(im).size == (4, 6)
    with Image.open(tmp_path / "rotated.jpg") as im:
        assert im.convert("RGB").size == (6, 4)


@pytest.mark.slow
def test_mask2former_folder_with_pickled_weights_is_refused_then_trusted_and_relabelled(
        hook: Path, tmp_path: Path):
    from transformers import Mask2FormerForUniversalSegmentation

    from zoo.plugins.mask2former import SWIN_BASE

    reference = trained(Mask2FormerForUniversalSegmentation(SWIN_BASE.tiny().config()))
    marker = tmp_path / "ran"
    reference.save_pretrained(tmp_path / "folder")
    (tmp_path / "folder" / "model.safetensors").unlink()
    torch.save(with_hook(reference.state_dict(), marker),
               tmp_path / "folder" / "pytorch_model.bin")
    spec = get_registry().model("mask2former")
    # raised in Python, so the way out is in Python's words (zoo.errors), as for the fast case
    with pytest.raises(WeightsError, match=r"pytorch_model.bin pickles Python objects .*"
                                           r"\(marker_hook.rebuild\).*trust_weights=True"):
        spec.load(weights=str(tmp_path / "folder"), tiny=True)
    assert not marker.exists()
    kept = spec.load(weights=str(tmp_path / "folder"), tiny=True, trust_weights=True)
    assert marker.exists()
    for key, value in reference.state_dict().items():
        assert torch.equal(kept.module.state_dict()[key], value), key
    relabelled = spec.load(weights=str(tmp_path / "folder"), tiny=True, trust_weights=True,
                           labels=4)  # a config change passes through the folder's config
    assert relabelled.module.class_predictor.out_features == 5
