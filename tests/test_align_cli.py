"""`zoo cut` and `zoo align` on the toy family, run as a user would (subprocess)."""

from __future__ import annotations

import csv
import json
import types

import numpy as np
import pytest
from conftest import assert_user_error, run_zoo

TOY = ("toy/cnn", "toy/vit", "--random-init", "--data", "synthetic:6")


def zoo_here(capsys: pytest.CaptureFixture, *args: str) -> types.SimpleNamespace:
    """Run the CLI in this process (one torch import for all the error cases)."""
    from zoo.cli.app import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return types.SimpleNamespace(returncode=exit_.value.code, stdout=out, stderr=err)


def test_cut_writes_eigenvectors_colours_and_figures(tmp_path):
    out = tmp_path / "cut"
    result = run_zoo("cut", *TOY, "--layers", "stage*,block1", "--n-eig", "6",
                     "--landmarks", "150", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    keys = [b["key"] for b in summary["blocks"]]
    assert keys == ["toy/cnn:stage1", "toy/cnn:stage2", "toy/cnn:stage3", "toy/vit:block1"]
    nodes = 6 * (16 * 16 + 8 * 8 + 4 * 4 + 4 * 4)
    eig = np.load(out / "eigvecs.npy")
    assert eig.shape == (nodes, 6)
    np.testing.assert_allclose(eig.T @ eig, np.eye(6), atol=1e-3)  # orthonormal eigenvectors
    colours = np.load(out / "colours.npy")
    assert colours.shape == (nodes, 3) and 0.0 <= colours.min() and colours.max() <= 1.0
    assert np.load(out / "trajectory.npy").shape == (nodes, 2)
    assert summary["blocks"][-1]["nodes"] == [nodes - 96, nodes]
    assert summary["landmarks"] == 150 and 6 <= summary["landmark_directions"] <= 150
    for png in ("aligned_colours.png", "trajectory.png", "depth.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    with open(out / "layers.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == ["stage1", "stage2", "stage3", "block1"]
    # the synthetic set has masks, so every layer gets an oracle mIoU in [0, 1]
    assert all(0.0 <= float(r["miou"]) <= 1.0 for r in rows)
    assert not list(out.glob("*.tmp"))


def test_align_trains_maps_that_cut_reuses(tmp_path, capsys):
    ids = [f"shapes/{i:05d}" for i in range(6)]
    target = tmp_path / "brain.npy"
    np.save(target, np.random.default_rng(0).normal(size=(6, 4)))
    (tmp_path / "brain.ids.txt").write_text("\n".join(reversed(ids)) + "\n")
    maps = tmp_path / "maps"
    result = run_zoo("align", *TOY, "--layers", "stage2,block1", "--target", str(target),
                     "--dim", "6", "--epochs", "5", "--out", str(maps), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["maps"] == ["toy/cnn:stage2", "toy/vit:block1"]
    manifest = json.loads((maps / "maps.json").read_text())
    assert manifest["dim"] == 6 and set(manifest["maps"]) == {"toy/cnn:stage2", "toy/vit:block1"}
    assert (maps / "history.csv").is_file()
    out = tmp_path / "cut"
    result = zoo_here(capsys, "cut", *TOY, "--layers", "stage2,block1", "--maps", str(maps),
                      "--n-eig", "4", "--landmarks", "100", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert np.load(out / "eigvecs.npy").shape == (6 * (64 + 16), 4)
    # maps for other layers are a clear error, not a silent default
    missing = zoo_here(capsys, "cut", *TOY, "--layers", "stage3,block1", "--maps", str(maps),
                       "--out", str(tmp_path / "other"))
    assert_user_error(missing, "no learned map for toy/cnn:stage3", "zoo align")


def test_align_closed_form_pair_scores_held_out(tmp_path, capsys):
    result = zoo_here(capsys, "align", *TOY, "--layers", "stage3,block2", "--method", "ridge",
                     "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["x"], summary["y"]) == ("toy/cnn:stage3", "toy/vit:block2")
    assert summary["score_name"] == "r2" and summary["n_test"] > 0
    assert np.load(tmp_path / "x_map.npy").shape == (32, 24)


@pytest.mark.parametrize("args, needles", [
    (("cut", *TOY, "--layers", "nothing*"), ("nothing*",)),
    (("cut", *TOY, "--layers", "embed"), ("embed", "no pixel grid")),
    (("cut", *TOY, "--weights", "w.pth", "--layers", "stage1"), ("MODEL=PATH",)),
    (("cut", *TOY, "--layers", "stage1", "--affinity", "l1"), ("unknown affinity 'l1'",)),
    (("align", *TOY, "--layers", "stage1"), ("needs --target",)),
    (("align", *TOY, "--layers", "stage1,block1", "--target", "no.csv"), ("does not exist",)),
    (("align", *TOY, "--layers", "stage*,block1", "--method", "cca"), ("exactly two layers",)),
    (("cut", *TOY, "--layers", "stage1"), ("no spatial layer of toy/vit is selected",)),
    (("align", *TOY, "--layers", "stage1", "--method", "svd"), ("unknown alignment method",)),
])
def test_user_errors_are_one_line(tmp_path, capsys, args, needles):
    assert_user_error(zoo_here(capsys, *args, "--out", str(tmp_path / "o")), *needles)


def test_target_ids_must_cover_the_images(tmp_path, capsys):
    target = tmp_path / "t.csv"
    target.write_text("sample_id,a\nshapes/00000,1.0\nshapes/00001,2.0\n")
    result = zoo_here(capsys, "align", *TOY, "--layers", "stage1,block0", "--target",
                      str(target), "--out", str(tmp_path / "o"))
    assert_user_error(result, "no row for 4 of 6 images")
