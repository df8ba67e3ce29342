"""The environment: a cache manifest missing a field is listed as damaged and removable (never
a KeyError), and `--out` under a file is refused before anything is computed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import assert_user_error, run_zoo


@pytest.fixture
def damaged_cache() -> Path:
    from zoo.data.sources import synthetic
    from zoo.features.cache import FeatureCache
    from zoo.features.extraction import extract
    from zoo.registry.host import get_registry

    cache = FeatureCache()
    extract(get_registry().model("toy/cnn").load(), synthetic("2"), ["stage1", "stage2"], "gap",
            cache=cache)
    first, second = sorted(Path(cache.root).glob("features/*/manifest.json"))
    m = json.loads(first.read_text())
    del m["fields"]
    first.write_text(json.dumps(m))
    m = json.loads(second.read_text())
    del m["shape"], m["key"]
    second.write_text(json.dumps(m))
    return Path(cache.root)


@pytest.mark.parametrize("args", [("cache", "rm", "--model", "toy/cnn"), ("cache", "ls"),
                                  ("cache", "ls", "--json"), ("cache", "prune", "--max-size", "0")])
def test_cache_commands_survive_a_manifest_missing_a_field(damaged_cache, args):
    result = run_zoo(*args, env={"ZOO_CACHE_DIR": str(damaged_cache)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_rm_model_removes_the_readable_entries_and_leaves_no_keyerror(damaged_cache):
    from zoo.features.cache import FeatureCache

    cache = FeatureCache(damaged_cache)
    removed = cache.remove("toy/cnn")
    assert removed == 1  # the entry whose fields still name the model
    assert cache.remove() >= 1 and not list(damaged_cache.glob("features/*"))


def test_compare_out_under_a_file_is_refused_before_computing(tmp_path):
    (tmp_path / "afile").write_text("x")
    cache = tmp_path / "cache"
    result = run_zoo("compare", "toy/cnn", "toy/vit", "--data", "synthetic:2", "--out",
                     str(tmp_path / "afile" / "out"), env={"ZOO_CACHE_DIR": str(cache)})
    assert_user_error(result, "afile", "is a file")
    assert not list(cache.glob("features/*")) and not os.path.exists(tmp_path / "afile" / "out")
