"""The pairing rule: rows pair by sample id only within one dataset (same name and content),
and every layer of a feature set is paired by its own ids, never by the first layer's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.errors import DataError


def _folder(root: Path, seed: int) -> str:
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(6):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
    return str(root)


def test_sets_from_different_folders_with_the_same_file_names_are_refused(tmp_path):
    import zoo

    toy = zoo.load("toy/cnn")
    a = zoo.extract(toy, _folder(tmp_path / "x", 0), "stage1")
    b = zoo.extract(toy, _folder(tmp_path / "y", 1), "stage1")
    assert a.sample_ids == b.sample_ids  # the same file names ...
    with pytest.raises(DataError, match="different data"):  # ... are not the same images
        zoo.compare(a, b, "cka")


def test_sets_over_the_same_data_still_pair(tmp_path):
    import zoo

    folder = _folder(tmp_path / "x", 0)
    a = zoo.extract(zoo.load("toy/cnn"), folder, "stage1")
    b = zoo.extract(zoo.load("toy/vit"), folder, "block0")
    assert zoo.compare(a, b, "cka").n == 6


def _shuffled_set():
    """A feature set whose second layer holds the first layer's rows in reverse order."""
    from zoo.features.featureset import FeatureSet
    from zoo.features.layers import LayerFeatures
    from zoo.registry.specs import LayerInfo

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    ids = [f"s{i}" for i in range(12)]
    layers = [LayerInfo("one", "one", "encoder", "NC", 5),
              LayerInfo("two", "two", "encoder", "NC", 5, depth=1.0)]
    feats = {"one": LayerFeatures(x, "NC", ids),
             "two": LayerFeatures(x[::-1].copy(), "NC", ids[::-1])}
    return FeatureSet("m/x", False, layers, feats, "gap", "d"), x


def test_each_layer_pairs_by_its_own_ids():
    from zoo.comparisons.comparison import compare

    fs, _ = _shuffled_set()
    result = compare(fs, fs, "cka")
    np.testing.assert_allclose(result.values("cka").to_numpy(), np.ones((2, 2)),
                               atol=1e-12)  # the same rows, each layer paired by its ids


def test_a_set_whose_layers_hold_other_samples_is_refused():
    from zoo.features.featureset import FeatureSet
    from zoo.features.layers import LayerFeatures
    from zoo.registry.specs import LayerInfo

    x = np.zeros((3, 2))
    layers = [LayerInfo("one", "one", "encoder", "NC", 2), LayerInfo("two", "two", "encoder",
                                                                     "NC", 2)]
    with pytest.raises(DataError, match="sample ids"):
        FeatureSet("m/x", False, layers, {"one": LayerFeatures(x, "NC", ["a", "b", "c"]),
                                          "two": LayerFeatures(x, "NC", ["a", "b", "d"])},
                   "gap", "d")


def test_a_saved_set_writes_every_layer_in_the_order_of_ids_json(tmp_path):
    import json

    fs, x = _shuffled_set()
    fs.save(tmp_path / "out")
    ids = json.loads((tmp_path / "out" / "ids.json").read_text())
    for name in ("one", "two"):
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{name}.npy"),
                                      x[[int(s[1:]) for s in ids]])
