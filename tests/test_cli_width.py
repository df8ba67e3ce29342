"""Tables at 80 columns never split an identifier (rich's table when every column fits its
longest word, else a compact layout), honour COLUMNS off a terminal, and stay wide without it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_zoo

WIDTH = 80


def _whole(output: str, identifiers: list[str], width: int = WIDTH) -> None:
    """Every identifier appears whole on some line, and no line is wider than `width` unless
    it holds a word (a long path) that no layout could fit."""
    lines = output.splitlines()
    for ident in identifiers:
        assert any(re.search(rf"(?<![\w.@/-]){re.escape(ident)}(?![\w.@/-])", ln)
                   for ln in lines), f"{ident!r} is split or missing:\n{output}"
    too_wide = [ln for ln in lines if len(ln) > width
                and max(len(w) for w in ln.split()) < width // 2]
    assert not too_wide, too_wide


def _zoo(*args: str, env: dict | None = None):
    result = run_zoo(*args, env={"COLUMNS": str(WIDTH), **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_info_keeps_layer_names_and_module_paths_whole():
    from zoo.registry.host import get_registry

    out = _zoo("info", "mask2former")
    layers = get_registry().model("mask2former").layers()
    _whole(out, [i.name for i in layers] + [i.module for i in layers])
    assert len(out.splitlines()) < 100  # was 175 lines when rich folded the module paths


def test_list_keeps_model_ids_whole():
    from zoo.registry.host import get_registry

    _whole(_zoo("list"), list(get_registry().models))


def test_cache_ls_keeps_ids_whole(tmp_path):
    cache = {"ZOO_CACHE_DIR": str(tmp_path)}
    assert run_zoo("extract", "toy/vit", "--data", "synthetic:2", env=cache).returncode == 0
    out = _zoo("cache", "ls", env=cache)
    _whole(out, ["toy/vit", "patch_embed", "block0", "block1", "block2", "synthetic:2"])


@pytest.mark.slow
def test_cut_keeps_layer_names_whole(tmp_path):
    out = _zoo("cut", "toy/cnn", "toy/vit", "--data", "synthetic:4", "--layers",
               "stage*,block*", "--landmarks", "64", "--n-eig", "4", "--images", "2",
               "--out", str(tmp_path / "cut"))
    _whole(out, ["toy/cnn", "toy/vit", "stage1", "stage2", "stage3", "block0", "block1"])


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_render_never_splits_a_word_at_any_width(width, monkeypatch, capsys):
    from zoo.cli.tables import print_table

    monkeypatch.setenv("COLUMNS", str(width))
    ids = ["model.transformer_module.decoder.mask_predictor.mask_embedder", "block10",
           "pixel_decoder.layer0"]
    print_table("t", ["layer", "module", "note"],
                [[f"block{i}", ids[i % 3], "a few words of prose that may wrap at spaces"]
                 for i in range(12)])
    out = capsys.readouterr().out
    _whole(out, [f"block{i}" for i in range(12)] + ids, width)


def test_without_columns_a_pipe_gets_the_wide_table(monkeypatch, capsys):
    from zoo.cli.tables import WIDE, table_width

    monkeypatch.delenv("COLUMNS", raising=False)
    assert table_width() == WIDE  # pytest captures stdout: not a terminal
    monkeypatch.setenv("COLUMNS", "77")
    assert table_width() == 77
