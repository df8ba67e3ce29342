"""The cache key holds everything that changes the features: a wrapped module's forward, not
only its weights; random-init weights as built (a plugin may change torch's defaults at
import); the image bytes actually decoded; and a hit must carry the dataset's own sample ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import DataError
from zoo.features.cache import FeatureCache
from zoo.features.extraction import extract


def _nets():
    import torch
    from torch import nn

    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.out = nn.Identity()

        def forward(self, x):
            return self.out(self.conv(x))

    class Squared(Plain):  # same parameters, another forward
        def forward(self, x):
            return self.out(self.conv(x) ** 2)

    return Plain(), Squared()


def test_a_wrapped_module_with_another_forward_is_keyed_apart():
    import zoo

    plain, squared = _nets()
    assert all((p == q).all() for p, q in zip(plain.state_dict().values(),
                                               squared.state_dict().values()))
    cache, data = FeatureCache(), zoo.dataset("synthetic:3")
    a = extract(zoo.wrap(plain, {"out": "out"}), data, ["out"], "gap", cache=cache)["out"]
    b = extract(zoo.wrap(squared, {"out": "out"}), data, ["out"], "gap", cache=cache)["out"]
    fresh = extract(zoo.wrap(squared, {"out": "out"}), data, ["out"], "gap", cache=None)["out"]
    np.testing.assert_array_equal(b.data, fresh.data)
    assert not np.allclose(a.data, b.data)


def test_a_wrapped_module_with_other_hyperparameters_is_keyed_apart():
    import torch
    from torch import nn

    import zoo

    torch.manual_seed(0)
    one = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    two = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, stride=2))
    two.load_state_dict(one.state_dict())
    assert zoo.wrap(one, ["0"]).fingerprint != zoo.wrap(two, ["0"]).fingerprint


@pytest.mark.parametrize("change", ["default_dtype", "patched_init"])
def test_random_init_changed_by_global_torch_state_is_keyed_apart(change, monkeypatch):
    import torch

    from zoo.data.sources import synthetic
    from zoo.registry.host import get_registry

    spec, data, cache = get_registry().model("toy/cnn"), synthetic("3"), FeatureCache()
    before = extract(spec.load(random_init=True), data, ["stage1"], "gap", cache=cache)
    if change == "default_dtype":
        monkeypatch.setattr(torch, "_zoo_dtype", torch.get_default_dtype(), raising=False)
        torch.set_default_dtype(torch.float64)
    else:
        monkeypatch.setattr(torch.nn.init, "kaiming_uniform_",
                            lambda t, *a, **k: torch.nn.init.constant_(t, 0.01))
    try:
        model = spec.load(random_init=True)
        after = extract(model, data, ["stage1"], "gap", cache=cache)
        fresh = extract(model, data, ["stage1"], "gap", cache=None)
    finally:
        torch.set_default_dtype(torch.float32)
    np.testing.assert_array_equal(after["stage1"].data, fresh["stage1"].data)
    assert not np.allclose(before["stage1"].data, after["stage1"].data)


def test_an_image_rewritten_after_the_scan_is_refused(tmp_path: Path):
    from PIL import Image

    from zoo.data.resolve import open_dataset
    from zoo.registry.host import get_registry

    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(tmp_path / f"{i}.png")
    data = open_dataset(str(tmp_path))
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "1.png")  # same size, new pixels
    toy = get_registry().model("toy/cnn").load()
    with pytest.raises(DataError, match="changed since"):
        extract(toy, data, ["stage1"], "gap", cache=FeatureCache())
    assert not list(Path(FeatureCache().root).glob("features/*/manifest.json"))


def test_a_hit_whose_manifest_lists_other_ids_is_not_served():
    from zoo.data.sources import synthetic
    from zoo.registry.host import get_registry

    toy, data, cache = get_registry().model("toy/cnn").load(), synthetic("4"), FeatureCache()
    first = extract(toy, data, ["stage1"], "gap", cache=cache)["stage1"]
    (manifest,) = Path(cache.root).glob("features/*/manifest.json")
    m = json.loads(manifest.read_text())
    m["sample_ids"] = list(reversed(m["sample_ids"]))
    manifest.write_text(json.dumps(m))
    again = extract(toy, data, ["stage1"], "gap", cache=cache)["stage1"]
    assert again.sample_ids == data.ids
    np.testing.assert_array_equal(again.data, first.data)
