"""`zoo cache ls` (sorted, sizes, total, unfinished entries) and `zoo cache prune`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import assert_user_error, run_zoo
from zoo.cli.cache import parse_age, parse_size
from zoo.data.sources import synthetic
from zoo.features.cache import FeatureCache
from zoo.features.extraction import extract
from zoo.registry.host import get_registry


@pytest.fixture
def filled(tmp_path) -> FeatureCache:
    """Five entries: toy/vit block0, toy/cnn stage1..3 (gap) and toy/cnn stage2 (grid:2)."""
    cache = FeatureCache(tmp_path)
    cnn = get_registry().model("toy/cnn").load()
    vit = get_registry().model("toy/vit").load()
    extract(vit, synthetic("4"), ["block0"], "gap", cache=cache)
    extract(cnn, synthetic("4"), ["stage3", "stage1", "stage2"], "gap", cache=cache)
    extract(cnn, synthetic("4"), ["stage2"], "grid:2", cache=cache)
    return cache


def _age(cache: FeatureCache, layer: str, reduction: str, seconds: float) -> None:
    entry = next(e for e in cache.entries() if e["fields"]["layer"] == layer
                 and e["fields"]["reduction"] == reduction)
    then = time.time() - seconds
    os.utime(Path(entry["path"]) / "manifest.json", (then, then))


def test_ls_is_sorted_with_sizes_and_a_total(filled):
    env = {"ZOO_CACHE_DIR": str(filled.root)}
    listing = json.loads(run_zoo("cache", "ls", "--json", env=env).stdout)
    order = [(e["fields"]["model"], e["fields"]["layer"], e["fields"]["reduction"])
             for e in listing["entries"]]
    assert order == [("toy/cnn", "stage1", "gap"), ("toy/cnn", "stage2", "gap"),
                     ("toy/cnn", "stage2", "grid:2"), ("toy/cnn", "stage3", "gap"),
                     ("toy/vit", "block0", "gap")]
    assert listing["bytes"] == sum(e["bytes"] for e in listing["entries"]) > 0
    table = run_zoo("cache", "ls", env=env)
    assert table.returncode == 0, table.stderr
    assert f"total: {listing['bytes'] / 1e6:.2f} MB" in table.stdout
    assert "5 entries, 0 unfinished" in table.stdout


def test_prune_older_than_removes_only_stale_entries(filled):
    _age(filled, "stage1", "gap", 3 * 86400)
    _age(filled, "block0", "gap", 10 * 86400)
    result = run_zoo("cache", "prune", "--older-than", "2d", env={"ZOO_CACHE_DIR":
                                                                  str(filled.root)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 2 entries")
    assert {e["fields"]["layer"] for e in filled.entries()} == {"stage2", "stage3"}


def test_prune_max_size_removes_least_recently_used_first(filled):
    for k, (layer, red) in enumerate([("stage3", "gap"), ("block0", "gap"), ("stage1", "gap"),
                                      ("stage2", "grid:2"), ("stage2", "gap")]):
        _age(filled, layer, red, 1000 - k)  # stage3 is the least recently used
    sizes = {(e["fields"]["layer"], e["fields"]["reduction"]): e["bytes"]
             for e in filled.entries()}
    keep = sizes[("stage2", "gap")] + sizes[("stage2", "grid:2")]
    removed, freed = filled.prune(max_size=keep)
    assert removed == 3 and freed == sum(sizes.values()) - keep
    assert {(e["fields"]["layer"], e["fields"]["reduction"]) for e in filled.entries()} == \
        {("stage2", "gap"), ("stage2", "grid:2")}


def test_reading_an_entry_counts_as_use(filled):
    _age(filled, "stage1", "gap", 10 * 86400)
    _age(filled, "block0", "gap", 10 * 86400)
    cnn = get_registry().model("toy/cnn").load()
    extract(cnn, synthetic("4"), ["stage1"], "gap", cache=filled)  # a hit
    assert filled.prune(older_than=86400)[0] == 1
    layers = {e["fields"]["layer"] for e in filled.entries()}
    assert "stage1" in layers and "block0" not in layers


def test_prune_needs_a_criterion_and_parses_its_values(tmp_path):
    env = {"ZOO_CACHE_DIR": str(tmp_path)}
    assert_user_error(run_zoo("cache", "prune", env=env), "--older-than", "--max-size")
    assert_user_error(run_zoo("cache", "prune", "--max-size", "lots", env=env),
                      "--max-size 'lots'")
    assert parse_size("2G") == 2 * 10**9 and parse_size("500MB") == 5 * 10**8
    assert parse_size("1.5k") == 1500 and parse_size("123") == 123
    assert parse_age("12h") == 43200 and parse_age("2w") == 14 * 86400
