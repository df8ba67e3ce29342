"""Feature cache: hits, content keys, corruption detection and resuming after an interruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.data.sources import synthetic
from zoo.errors import DataError, ZooError
from zoo.features.cache import FeatureCache
from zoo.features.extraction import extract
from zoo.registry.host import get_registry


class CountingModel:
    """Wraps a ZooModel and counts forward passes (and can fail at a chosen batch)."""

    def __init__(self, model, fail_at: int | None = None) -> None:
        self._model, self.calls, self.fail_at = model, 0, fail_at

    def __getattr__(self, name):
        return getattr(self._model, name)

    def forward_layers(self, x, layers, stop_early=True):
        if self.fail_at is not None and self.calls == self.fail_at:
            self.calls += 1
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        return self._model.forward_layers(x, layers, stop_early)


@pytest.fixture
def toy():
    return get_registry().model("toy/cnn").load()


def test_second_extraction_is_served_from_the_cache(toy):
    cache, data = FeatureCache(), synthetic("10")
    first = CountingModel(toy)
    a = extract(first, data, ["stage1", "stage3"], "gap", batch_size=4, cache=cache)
    assert first.calls == 3
    second = CountingModel(toy)
    b = extract(second, data, ["stage1", "stage3"], "gap", batch_size=4, cache=cache)
    assert second.calls == 0
    np.testing.assert_array_equal(a["stage3"].data, b["stage3"].data)
    assert b["stage3"].sample_ids == data.ids


def test_key_covers_reduction_and_data(toy):
    cache = FeatureCache()
    extract(toy, synthetic("4"), ["stage1"], "gap", cache=cache)
    counting = CountingModel(toy)
    extract(counting, synthetic("4"), ["stage1"], "grid:2", cache=cache)
    extract(counting, synthetic("5"), ["stage1"], "gap", cache=cache)
    assert counting.calls == 2
    assert len(cache.entries()) == 3


def test_corrupt_entry_is_detected_and_recomputed(toy):
    cache, data = FeatureCache(), synthetic("4")
    good = extract(toy, data, ["stage2"], "gap", cache=cache)["stage2"].data
    array = next(Path(cache.root).rglob("features.npy"))
    raw = bytearray(array.read_bytes())
    raw[-8:] = b"\x00" * 8  # same size, different content
    array.write_bytes(bytes(raw))
    counting = CountingModel(toy)
    again = extract(counting, data, ["stage2"], "gap", cache=cache)["stage2"].data
    assert counting.calls == 1
    np.testing.assert_array_equal(good, again)
    array.write_bytes(array.read_bytes()[:40])  # truncated
    assert cache.get(cache.entries()[0]["key"]) is None


def test_interrupted_extraction_resumes_only_unfinished_batches(toy):
    cache, data = FeatureCache(), synthetic("10")
    killed = CountingModel(toy, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        extract(killed, data, ["stage1"], "gap", batch_size=3, cache=cache)
    assert cache.entries() == []  # nothing looks complete
    resumed = CountingModel(toy)
    out = extract(resumed, data, ["stage1"], "gap", batch_size=3, cache=cache)
    assert resumed.calls == 2  # batches 2 and 3 of 4
    fresh = extract(toy, data, ["stage1"], "gap", batch_size=3, cache=None)
    np.testing.assert_array_equal(out["stage1"].data, fresh["stage1"].data)


def test_nan_features_are_refused_and_never_cached(toy):
    toy.module.stages[0][0].weight.data[:] = float("nan")
    cache = FeatureCache()
    with pytest.raises(ZooError, match=r"toy/cnn:stage2 produced NaN/inf features for 2 "
                                       r"samples \(e\.g\. \['shapes/00000'"):
        extract(toy, synthetic("2"), ["stage2"], "gap", cache=cache)
    assert cache.entries() == []


def test_unreadable_image_names_the_file(toy, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"nope")
    from zoo.data.sources import image_folder

    with pytest.raises(DataError, match="broken.png"):
        extract(toy, image_folder(str(tmp_path)), ["stage1"], "gap")
