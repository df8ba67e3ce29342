"""The CLI as a user meets it: listing, info, extract, cache, and one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np

from tests.conftest import assert_user_error, run_zoo


def test_list_info_and_help_do_not_import_torch():
    code = ("import sys\nfrom zoo.cli.app import main\n"
            "for argv in (['list'], ['list', 'metrics'], ['--help'], ['info', 'toy/cnn']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n"
            "        assert e.code == 0, (argv, e.code)\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("NO-TORCH"), result.stderr


def test_list_json_has_models_and_datasets():
    models = json.loads(run_zoo("list", "--json").stdout)
    assert {"toy/cnn", "toy/vit"} <= {m["id"] for m in models}
    datasets = json.loads(run_zoo("list", "datasets", "--json").stdout)
    assert {"samples", "synthetic", "folder", "isic"} <= {d["name"] for d in datasets}


def test_info_shows_layers_with_layouts():
    result = run_zoo("info", "toy/vit", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    block = next(l for l in info["layers"] if l["name"] == "block0")
    assert block["layout"] == "NLC" and block["prefix_tokens"] == 1


def test_extract_on_samples_writes_arrays(tmp_path):
    out = tmp_path / "feats"
    result = run_zoo("extract", "toy/vit", "--data", "samples", "--layers", "block*,embed",
                     "--reduce", "gap", "--out", str(out))
    assert result.returncode == 0, result.stderr
    ids = json.loads((out / "ids.json").read_text())
    assert len(ids) == 16
    block = np.load(out / "block1.npy")
    assert block.shape == (16, 24) and np.isfinite(block).all()
    listing = run_zoo("cache", "ls", "--json")
    assert {e["fields"]["layer"] for e in json.loads(listing.stdout)["entries"]} == \
        {"block0", "block1", "block2", "embed"}
    assert "removed 4" in run_zoo("cache", "rm", "--model", "toy/vit").stdout


def test_user_errors_are_one_line_with_exit_2(tmp_path):
    assert_user_error(run_zoo("info", "nosuchmodel"), "nosuchmodel", "toy")
    assert_user_error(run_zoo("extract", "toy/cnn", "--layers", "stage9"), "stage9", "stage1")
    assert_user_error(run_zoo("extract", "toy/cnn", "--data", str(tmp_path / "missing")),
                      "missing", "samples")
    assert_user_error(run_zoo("extract", "toy/cnn", "--reduce", "median"), "median")
    assert_user_error(run_zoo("extract", "toy/cnn", "--bogus"), "--bogus")
    assert_user_error(run_zoo("list", "planets"), "planets", "models")
    assert_user_error(run_zoo("extract", "toy/cnn", "--device", "tpu"), "tpu")


def test_corrupt_image_stops_with_its_name_or_is_skipped(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 40), "red").save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    result = run_zoo("extract", "toy/cnn", "--data", str(tmp_path), "--out", str(out))
    assert_user_error(result, "bad.png", "--skip-bad")
    assert not out.exists() or not any(out.iterdir())
    skipped = run_zoo("extract", "toy/cnn", "--data", str(tmp_path), "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 1 unreadable" in skipped.stderr


def test_version_and_near_miss_suggestions():
    import zoo

    version = run_zoo("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"zoo {zoo.__version__}"
    assert_user_error(run_zoo("info", "toy/cn"), "did you mean 'toy/cnn'")
