"""The demo's models carry ids that say what they are, and its held-out split is a dataset the
CLI can name (`--data lesions:test`), the very images (and fingerprint) the demo compares on."""

from __future__ import annotations

import pytest

from zoo.errors import ZooError


def test_lesions_test_is_the_demos_held_out_split():
    from zoo.data.resolve import open_dataset
    from zoo.data.sources import split_indices
    from zoo.study.demo import DATA, TEST

    whole = open_dataset(DATA)
    assert len(whole) == 240 and whole.name == "lesions:240"
    test = open_dataset(TEST)
    assert test.name == "lesions:test"
    assert test.ids == [whole.ids[i] for i in split_indices(whole.ids)["test"]]
    again = open_dataset("lesions:240:test")
    assert again.fingerprint == test.fingerprint and again.ids == test.ids
    assert len(open_dataset("lesions:40:train")) + len(open_dataset("lesions:40:validation")) \
        + len(open_dataset("lesions:40:test")) == 40


@pytest.mark.parametrize("bad", ["lesions:test:40", "lesions:x", "lesions:1:2:test"])
def test_bad_lesions_arguments_are_one_error(bad):
    from zoo.data.resolve import open_dataset

    with pytest.raises(ZooError, match="lesions"):
        open_dataset(bad)


def test_demo_ids_name_the_architecture_actually_built():
    from zoo.registry.host import get_registry
    from zoo.study.demo import MODELS, demo_id

    ids = {demo_id(b) for b in MODELS}
    assert ids == {"unetpp/resnet18-tiny.demo", "mask2former/swin-w16.demo"}
    unet = get_registry().model("unetpp/resnet34").load(random_init=True,
                                                        **MODELS["unetpp/resnet34"]["options"])
    encoder = unet.module.encoder
    assert [len(getattr(encoder, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]  # ResNet-18
    base = "mask2former/swin-base.ade-semantic"
    m2f = get_registry().model(base).load(random_init=True, **MODELS[base]["options"])
    assert m2f.module.config.backbone_config.embed_dim == 16


def test_a_checkpoint_saved_under_another_arch_registers_under_it(tmp_path, monkeypatch):
    from zoo.registry.host import get_registry, reset_registry
    from zoo.study.train import TrainResult, save_checkpoint

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    model = get_registry().model("unetpp/resnet34").load(random_init=True, tiny=True, size=64)
    result = TrainResult(history=[], best_epoch=0, metrics={}, splits={})
    save_checkpoint(model, "unetpp/resnet34", "mine", {"tiny": True, "size": 64}, result,
                    tmp_path, "lesions:240", default=True, arch="resnet18-tiny",
                    description="UNet++, ResNet-18 encoder")
    reset_registry()
    spec = get_registry().model("unetpp")
    assert spec.id == "unetpp/resnet18-tiny.mine"
    assert spec.description.startswith("UNet++, ResNet-18 encoder fine-tuned on lesions:240")
    loaded = spec.load()
    assert loaded.id == "unetpp/resnet18-tiny.mine" and len(loaded.layers) == len(model.layers)


def test_info_says_when_a_family_resolves_to_a_trained_checkpoint(tmp_path):
    import json

    from tests.conftest import run_zoo
    from zoo.plugins.toy import cnn_layers

    folder = tmp_path / "checkpoints" / "toy__small.mine"
    folder.mkdir(parents=True)
    (folder / "zoo.json").write_text(json.dumps({
        "id": "toy/small.mine", "base": "toy/cnn", "tag": "mine", "options": {}, "data": "x",
        "default": True, "input": {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                                   "interpolation": "bilinear"},
        "layers": [i.as_dict() for i in cnn_layers()[:2]], "train": {}}))
    result = run_zoo("info", "toy", env={"ZOO_CACHE_DIR": str(tmp_path), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert ("note: toy resolves to the trained checkpoint toy/small.mine (2 layers); the "
            "family's own default is toy/cnn (5 layers)") in result.stdout


@pytest.mark.slow
def test_the_cli_on_lesions_test_reproduces_the_demos_values(tmp_path, monkeypatch):
    """`zoo demo` (training cut to 1 epoch on 40 images), then `zoo compare unetpp
    mask2former --data lesions:test`: the same values, to the rounding of float64 sums."""
    import json

    import numpy as np

    import zoo.study.demo
    from tests.conftest import run_zoo

    monkeypatch.setattr(zoo.study.demo, "DATA", "lesions:40")
    for cfg in zoo.study.demo.MODELS.values():
        monkeypatch.setitem(cfg, "epochs", 1)
    comparison, _ = zoo.study.demo.run_demo(permutations=0)
    assert {comparison.a.model, comparison.b.model} == {
        "unetpp/resnet18-tiny.demo", "mask2former/swin-w16.demo"}
    result = run_zoo("compare", "unetpp", "mask2former", "--data", "lesions:test", "--images",
                     "0", "--out", str(tmp_path / "cli"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "cli" / "results.json").read_text())["rows"]
    for metric in comparison.metrics:
        cli = {(r["layer_a"], r["layer_b"]): r["value"] for r in rows if r["metric"] == metric}
        demo = comparison.values(metric)
        got = np.array([[cli[(a, b)] if cli[(a, b)] is not None else np.nan
                         for b in demo.columns] for a in demo.index])
        # Both score the same float32 features (the CLI reads the demo's from the cache), but
        # the demo computes under demo_settings and the arrays sit at other addresses, so BLAS
        # and SIMD reductions may add the float64 terms in another order. The metrics are
        # ratios of such sums of terms of order 1: a reordering moves them by a few ulps of 1
        # (1 ulp in 38 of 448 values was seen); a changed feature would move them by ~1e-8.
        np.testing.assert_allclose(got, demo.to_numpy(), rtol=0, atol=8 * np.finfo(float).eps)
