"""`zoo compare` and `zoo matrix` end to end on the toy family, and the comparison logic."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.conftest import assert_user_error, run_zoo
from zoo.comparisons.comparison import compare
from zoo.features.featureset import FeatureSet
from zoo.features.layers import LayerFeatures
from zoo.registry.specs import LayerInfo


def test_compare_toy_writes_table_csv_json_heatmaps_and_report(tmp_path):
    out = tmp_path / "cmp"
    result = run_zoo("compare", "toy/cnn", "toy/vit", "--data", "samples", "--metric",
                     "cka,rsa", "--permutations", "9", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "summary by role" in result.stdout and "report:" in result.stdout
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * 5 * 5
    assert {r["metric"] for r in rows} == {"cka", "rsa"}
    assert all(r["random_init_a"] == "True" for r in rows)
    # the CLI's p-values are the library's (same shared permutations, same seed)
    import zoo

    library = zoo.compare_models("toy/cnn", "toy/vit", "samples", "cka,rsa", permutations=9,
                                 random_init=True).table()
    expected = {(r.metric, r.layer_a, r.layer_b): r.p_value for r in library.itertuples()}
    got = {(r["metric"], r["layer_a"], r["layer_b"]): float(r["p_value"]) for r in rows}
    assert got == pytest.approx(expected, rel=1e-12)
    assert len(set(got.values())) > 1  # not one constant p-value everywhere
    summary = json.loads((out / "results.json").read_text())
    assert summary["n"] == 16 and summary["random_init_a"] is True
    assert len(summary["metrics"]["cka"]["best_matches"]) == 5
    assert 1 / 10 <= summary["metrics"]["cka"]["best_matches"][0]["p_value"] <= 1
    for name in ("heatmap_cka.png", "heatmap_rsa.png", "activations.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert "Random-init weights" in report and "heatmap_cka.png" in report
    assert "beat the permutation null" in report and "Benjamini-Hochberg-adjusted" in report


def test_compare_model_with_itself_is_one_on_the_diagonal(tmp_path):
    out = tmp_path / "self"
    result = run_zoo("compare", "toy/cnn", "toy/cnn", "--data", "synthetic:12", "--metric",
                     "cka", "--images", "0", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    diagonal = [r["value"] for r in rows if r["layer_a"] == r["layer_b"]]
    np.testing.assert_allclose(diagonal, 1.0, atol=1e-9)


def test_compare_errors_name_the_bad_value():
    assert_user_error(run_zoo("compare", "toy/cnn", "toy/vit", "--metric", "cosmic"),
                      "cosmic", "cka")
    assert_user_error(run_zoo("compare", "toy/cnn", "nope"), "nope")
    assert_user_error(run_zoo("compare", "toy/cnn", "toy/vit", "--layers", "toy/vit=stage1"),
                      "stage1", "block0")


def test_a_run_never_overwrites_another(tmp_path):
    out = tmp_path / "cmp"
    args = ("compare", "toy/cnn", "toy/vit", "--data", "synthetic:6", "-m", "cka", "--images",
            "0", "--out", str(out))
    assert run_zoo(*args).returncode == 0
    before = (out / "results.csv").read_bytes()
    assert_user_error(run_zoo(*args), "already exists", "--overwrite")
    assert (out / "results.csv").read_bytes() == before
    assert run_zoo(*args, "--overwrite").returncode == 0


def test_two_matrix_runs_with_different_models_keep_both(tmp_path):
    for models in (("toy/cnn",), ("toy/vit",)):
        result = run_zoo("matrix", *models, "--data", "synthetic:6", "--random-init",
                         cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all((tmp_path / "runs" / f / "matrix.csv").exists()
                                     for f in folders), folders
    assert folders[0].startswith("matrix-toy-cnn-") and folders[1].startswith("matrix-toy-vit-")


def test_matrix_has_model_blocks_and_smoothness(tmp_path):
    out = tmp_path / "m"
    result = run_zoo("matrix", "toy/cnn", "toy/vit", "--data", "synthetic:10", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "matrix.json").read_text())
    values = np.array(data["values"], dtype=float)
    assert values.shape == (10, 10)
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-9)
    np.testing.assert_allclose(values, values.T, atol=1e-12)
    assert len(data["smoothness"]["toy/cnn"]["value"]) == 4
    np.testing.assert_allclose(data["smoothness"]["toy/cnn"]["value"][0], 1 - values[0, 1])
    assert (out / "matrix.png").exists() and (out / "smoothness.png").exists()


def _side(name: str, reps: list[np.ndarray], roles: list[str], ids: list[str]) -> FeatureSet:
    layers = [LayerInfo(f"l{i}", f"m{i}", r, "NC", x.shape[1], None, i / max(1, len(reps) - 1))
              for i, (x, r) in enumerate(zip(reps, roles))]
    return FeatureSet(name, False, layers, {i.name: LayerFeatures(x, "NC", ids)
                                            for i, x in zip(layers, reps)}, "gap", "d")


def test_rows_are_paired_by_sample_id_not_position():

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    ids = [f"s{i}" for i in range(30)]
    perm = rng.permutation(30)
    a = _side("A", [x], ["encoder"], ids)
    # same data, rows stored in another order and labelled so
    b = _side("B", [x[perm]], ["encoder"], [ids[i] for i in perm])
    paired = compare(a, b, ["cka"])
    assert paired.results["cka"].values[0, 0] == pytest.approx(1.0)
    by_position = compare(a, _side("B", [x[perm]], ["encoder"], ids), ["cka"])
    assert by_position.results["cka"].values[0, 0] < 0.6


def test_best_matches_and_role_summary_follow_the_metric_kind():

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    ids = [str(i) for i in range(40)]
    a = _side("A", [x, y], ["encoder", "decoder"], ids)
    b = _side("B", [y @ np.linalg.qr(rng.normal(size=(6, 6)))[0], x], ["encoder", "decoder"],
              ids)
    c = compare(a, b, ["cka"])
    best = dict(zip(c.best_matches("cka")["layer_a"], c.best_matches("cka")["best_b"]))
    assert best == {"l0": "l1", "l1": "l0"}  # x matches x, y matches rotated y
    summary = {(s["role_a"], s["role_b"]): s["mean"] for s in c.role_summary("cka")}
    assert summary[("encoder", "decoder")] == pytest.approx(1.0)
    assert summary[("decoder", "encoder")] == pytest.approx(1.0)


def test_matrix_and_compare_take_weights_per_model_and_record_provenance(tmp_path):
    import torch

    from zoo.registry.host import get_registry

    module = get_registry().model("toy/cnn").load(random_init=True).module
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1.5)
    ckpt = tmp_path / "cnn.pth"
    torch.save(module.state_dict(), ckpt)
    out = tmp_path / "m"
    result = run_zoo("matrix", "toy/cnn", "toy/vit", "--data", "synthetic:6", "--random-init",
                     "--weights", f"toy/cnn={ckpt}", "--out", str(out))
    assert result.returncode == 0, result.stderr
    models = json.loads((out / "matrix.json").read_text())["provenance"]["models"]
    assert models["toy/cnn"]["weights_source"].endswith("cnn.pth")
    assert models["toy/cnn"]["random_init"] is False and models["toy/vit"]["random_init"] is True
    out = tmp_path / "c"
    result = run_zoo("compare", "toy/cnn", "toy/vit", "--data", "synthetic:6", "-m", "cka",
                     "--images", "0", "--weights", f"toy/cnn={ckpt}", "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["provenance_a"]["weights_source"].endswith("cnn.pth")
    assert "cnn.pth" in result.stdout and "cnn.pth" in (out / "report.html").read_text()


def test_the_random_init_label_reaches_every_terminal_table(tmp_path):
    extract = run_zoo("extract", "toy/cnn", "--data", "synthetic:6", "--no-cache")
    matrix = run_zoo("matrix", "toy/cnn", "--data", "synthetic:6", "--random-init", "--out",
                     str(tmp_path / "m"))
    for result in (extract, matrix):
        assert result.returncode == 0, result.stderr
    assert "toy/cnn [random init] on synthetic:6" in extract.stdout  # rich no longer eats it
    titles = [line for line in matrix.stdout.splitlines() if "best match" in line
              or "change between" in line or "across" in line]
    assert len(titles) == 3 and all("[random init]" in t for t in titles), matrix.stdout
