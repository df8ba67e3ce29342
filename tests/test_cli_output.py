"""Small output faults: the cache line says what the cache did, undefined-value notes name the
metric once, a one-process matrix has no `shard 0/1`, `zoo matrix merge --help` is merge's."""

from __future__ import annotations

import json

from tests.conftest import run_zoo


def test_extract_says_whether_the_cache_was_read_or_written(tmp_path):
    env = {"ZOO_CACHE_DIR": str(tmp_path)}
    first = run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "-l", "stage1", env=env)
    assert "feature cache: 0 layer(s) read, 1 computed and stored" in first.stdout
    second = run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "-l", "stage1,stage2",
                     env=env)
    assert "feature cache: 1 layer(s) read, 1 computed and stored" in second.stdout
    off = run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "-l", "stage1", "--no-cache",
                  "--json", env=env)
    summary = json.loads(off.stdout)
    assert summary["cached"] is False and summary["cache"] == {"stage1": "off"}


def test_undefined_notes_name_the_metric_once(tmp_path):
    result = run_zoo("compare", "toy/cnn", "toy/vit", "--data", "synthetic:5", "-m", "svcca",
                     "--images", "0", "--out", str(tmp_path / "o"))
    notes = [ln for ln in result.stdout.splitlines() if "undefined:" in ln]
    assert notes and all(ln.count("svcca:") == 1 for ln in notes), notes


def test_a_one_process_matrix_says_no_shard(tmp_path):
    result = run_zoo("matrix", "toy/cnn", "--data", "synthetic:3", "-l", "stage1",
                     "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    assert "shard 0/1" not in result.stderr + result.stdout


def test_matrix_merge_help_is_merges_own():
    result = run_zoo("matrix", "merge", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: zoo matrix merge RUN")

