"""`zoo dissect` and `zoo lce` on the toy family: tables, arrays and plots in --out."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from zoo.cli.dissect import register
from zoo.errors import DataError, ZooError


def _invoke(*args: str):
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, list(args))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dissected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dissect")
    out = {}
    for model, stability in (("toy/cnn", "2"), ("toy/vit", "0")):
        out[model] = root / model.replace("/", "-")
        result = _invoke("dissect", model, "--random-init", "--concepts", "synthetic:8",
                         "--stability", stability, "--no-cache", "--out", str(out[model]))
        assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_dissect_writes_tables_arrays_and_plots_for_every_spatial_layer(dissected):
    folder = dissected["toy/cnn"]
    summary = json.loads((folder / "dissect.json").read_text())
    assert summary["model"] == "toy/cnn" and summary["random_init"] is True
    assert summary["quantile"] == 0.005 and summary["iou_cutoff"] == 0.04
    # the pooled embedding (layout NC) has no spatial map and is not dissected
    assert [layer["layer"] for layer in summary["layers"]] == ["stem", "stage1", "stage2",
                                                               "stage3"]
    concepts = _rows(folder / "concepts.csv")
    for layer, channels in zip(summary["layers"], (8, 8, 16, 32)):
        sub = folder / layer["folder"]
        units = _rows(sub / "units.csv")
        assert len(units) == channels == layer["units"]
        iou = np.load(sub / "iou.npy")
        assert iou.shape == (channels, len(concepts))
        best = iou.max(axis=1)
        np.testing.assert_allclose([float(u["iou"]) for u in units], best)
        labelled = [u for u in units if u["labelled"] == "True"]
        assert len(labelled) == layer["labelled"] == int((best > 0.04).sum())
        assert dict(Counter(u["concept"] for u in labelled)) == layer["profile"]
        assert {r["concept"]: int(r["units"]) for r in _rows(sub / "profile.csv")} == \
            layer["profile"]
        assert all(0.0 <= float(u["stability"]) <= 1.0 for u in units)
        assert (sub / "profile.png").read_bytes()[:4] == b"\x89PNG"
    vit = json.loads((dissected["toy/vit"] / "dissect.json").read_text())
    assert [layer["layer"] for layer in vit["layers"]] == ["patch_embed", "block0", "block1",
                                                           "block2"]


def test_lce_embeds_several_models_and_writes_tables_and_plots(dissected, tmp_path: Path):
    perf = tmp_path / "perf.csv"
    perf.write_text("model,task,score\ntoy/cnn,seg,0.4\ntoy/vit,seg,0.6\n")
    out = tmp_path / "lce"
    result = _invoke("lce", str(dissected["toy/cnn"]), str(dissected["toy/vit"]),
                     "--performance", str(perf), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    printed = json.loads(result.output)
    rows = _rows(out / "lce.csv")
    assert len(rows) == len(printed["entries"]) == 8
    assert {r["model"] for r in rows} == {"toy/cnn", "toy/vit"}
    assert all(r["random_init"] == "True" for r in rows)
    summary = json.loads((out / "lce.json").read_text())
    assert 0 < sum(summary["explained_variance"]) <= 1.0 + 1e-9
    assert {r["task"] for r in _rows(out / "performance.csv")} == {"seg"}
    for name in ("lce_2d.png", "lce_3d.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_cli_user_errors_name_the_problem(dissected, tmp_path: Path):
    result = _invoke("dissect", "toy/cnn", "--random-init", "--concepts", "nope",
                     "--out", str(tmp_path / "x"))
    assert isinstance(result.exception, ZooError) and "nope" in str(result.exception)
    result = _invoke("dissect", "toy/cnn", "--random-init", "--quantile", "2",
                     "--out", str(tmp_path / "q"))
    assert isinstance(result.exception, ZooError) and "quantile 2" in str(result.exception)
    assert not (tmp_path / "q").exists()  # refused before any work or output
    folder = tmp_path / "y"
    ok = _invoke("dissect", "toy/cnn", "--random-init", "--concepts", "synthetic:2",
                 "--layers", "stem", "--no-cache", "--out", str(folder))
    assert ok.exit_code == 0 and (folder / "dissect.json").exists()
    before = (folder / "dissect.json").read_bytes()
    result = _invoke("dissect", "toy/cnn", "--random-init", "--concepts", "synthetic:2",
                     "--layers", "stem,embed", "--no-cache", "--out", str(folder), "--overwrite")
    assert isinstance(result.exception, ZooError) and "spatial" in str(result.exception)
    # the failed run leaves the previous complete run as it was, never a mixed folder
    assert (folder / "dissect.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y"]
    result = _invoke("lce", str(tmp_path), "--out", str(tmp_path / "z"))
    assert isinstance(result.exception, DataError) and "dissect.json" in str(result.exception)
