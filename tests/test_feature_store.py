"""One feature store: `zoo matrix` reads and writes the cache entries of `zoo extract`/`zoo
compare` (sample ranges of one entry), and its run folder keeps markers and states only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.cli.app import main
from zoo.features.cache import FeatureCache
from zoo.io import cache_root
from zoo.model.base import ZooModel

DATA = ("--data", "synthetic:12", "--batch-size", "4")
LAYERS = ("--layers", "stem,stage1")


def zoo(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 0


@pytest.fixture
def forwards(monkeypatch):
    """Counts the images every ZooModel forward pass sees."""
    seen = []
    original = ZooModel.forward_layers

    def counting(self, x, layers, *args, **kwargs):
        seen.append(len(x))
        return original(self, x, layers, *args, **kwargs)

    monkeypatch.setattr(ZooModel, "forward_layers", counting)
    return seen


def entries() -> dict[str, tuple[int, int]]:
    """Complete entries: key -> (inode, mtime_ns) of the array file."""
    out = {}
    for entry in FeatureCache().entries():
        stat = (cache_root() / "features" / entry["key"] / "features.npy").stat()
        out[entry["key"]] = (stat.st_ino, stat.st_mtime_ns)
    return out


def matrix(tmp_path, name: str, *extra: str) -> None:
    zoo("matrix", "toy/cnn", *DATA, *LAYERS, "--samples-per-unit", "4", "--run",
        str(tmp_path / name), "--out", str(tmp_path / f"{name}-out"), *extra)


def test_matrix_after_extract_extracts_nothing(tmp_path, forwards):
    zoo("extract", "toy/cnn", *DATA, *LAYERS)
    assert sum(forwards) == 12
    before = entries()
    assert len(before) == 2
    matrix(tmp_path, "run")
    assert sum(forwards) == 12  # no image went through the model again
    assert entries() == before  # the same files, untouched, and no new entry
    marker = json.loads((tmp_path / "run" / "done" / "extract-m000-s000000000.json").read_text())
    assert set(marker["keys"].values()) == set(before)


def test_extract_after_matrix_extracts_nothing(tmp_path, forwards):
    matrix(tmp_path, "run")  # three extract units of 4 samples fill ranges of one entry each
    assert sum(forwards) == 12
    before = entries()
    assert len(before) == 2 and not list((cache_root() / "parts").glob("*/data-*"))
    zoo("extract", "toy/cnn", *DATA, *LAYERS)
    zoo("compare", "toy/cnn", "toy/cnn", *DATA, *LAYERS, "--images", "0", "--out",
        str(tmp_path / "cmp"))  # no activation images: those are full maps, other entries
    assert sum(forwards) == 12
    assert entries() == before


def test_run_folder_keeps_markers_and_states_only(tmp_path):
    matrix(tmp_path, "run")
    run = tmp_path / "run"
    assert not list(run.glob("units/extract-*/**/*.*"))  # no features, no ids
    kinds = {p.parent.name.split("-")[0] for p in run.glob("units/*/*")}
    assert kinds == {"prepare", "score"}
    assert not (run / "features").exists()


def test_no_cache_keeps_the_store_in_the_run_folder(tmp_path, forwards):
    matrix(tmp_path, "run", "--no-cache")
    assert entries() == {}
    assert len(list((tmp_path / "run" / "features" / "features").glob("*/manifest.json"))) == 2


def test_writers_of_different_ranges_merge_into_one_entry(tmp_path):
    """Two live writers of one entry fill their own files (as concurrent shards do); the next
    writer merges both (each range checked against its checksum) and can seal the entry."""
    cache = FeatureCache(tmp_path)
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    a = cache.writer("k", {"f": 1}, 10)
    b = cache.writer("k", {"f": 1}, 10)  # a holds its file: b makes its own
    a.write(0, 6, data[:6])
    b.write(6, 10, data[6:])
    a.close()
    b.close()
    assert len(list((tmp_path / "parts" / "k").glob("data-*.npy"))) == 2
    c = cache.writer("k", {"f": 1}, 10)
    c.verify()
    assert c.stored() == {0: 6, 6: 10}
    c.seal("NC", [f"s{i}" for i in range(10)])
    np.testing.assert_array_equal(cache.get("k").data, data)
    assert not (tmp_path / "parts" / "k").exists()


def test_a_corrupt_range_is_not_merged(tmp_path):
    cache = FeatureCache(tmp_path)
    data = np.ones((10, 4), np.float32)
    a, b = cache.writer("k", {}, 10), cache.writer("k", {}, 10)
    a.write(0, 6, data[:6])
    b.write(6, 10, data[6:])
    path = b.path
    a.close()
    b.close()
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # flip bits of b's last sample
    path.write_bytes(bytes(raw))
    c = cache.writer("k", {}, 10)
    c.verify()
    assert c.stored() == {0: 6}
    c.close()


def test_plan_batches_fills_only_the_window_and_skips_what_is_stored():
    from zoo.features.extraction import plan_batches

    # layer a has [0, 6) stored, b nothing: the window [4, 12) forwards 6..12 for a, 4..12 for b
    steps = plan_batches({"a": {0: 6}, "b": {}}, 20, 4, (4, 12))
    assert steps == [(4, 6, ["b"]), (6, 10, ["a", "b"]), (10, 12, ["a", "b"])]
    assert plan_batches({"a": {0: 20}}, 20, 4, (4, 12)) == []
    assert plan_batches({"a": {}}, 20, 8) == [(0, 8, ["a"]), (8, 16, ["a"]), (16, 20, ["a"])]
