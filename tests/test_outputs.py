"""The output-folder check: --overwrite never deletes a folder holding the run's own inputs
(data folder, current folder, a matrix run being merged), and a path under a file is refused
before any work; storage: float16 features beyond float16's range are an error, never inf."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_user_error, run_zoo
from zoo.errors import ZooError


def _images(folder: Path, n: int = 3) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (16, 16), (60 * i, 100, 30)).save(folder / f"{i}.png")
    return folder


def test_overwrite_refuses_the_data_folder_and_its_parents(tmp_path):
    data = _images(tmp_path / "proj" / "data")
    for out in (data, tmp_path / "proj"):
        result = run_zoo("extract", "toy/cnn", "--data", str(data), "--layers", "stage1",
                         "--out", str(out), "--overwrite")
        assert_user_error(result, "replacing it would delete")
        assert sorted(p.name for p in data.iterdir()) == ["0.png", "1.png", "2.png"]


def test_overwrite_refuses_the_current_folder(tmp_path):
    data = _images(tmp_path / "work" / "data")
    result = run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "--layers", "stage1",
                     "--out", ".", "--overwrite", cwd=tmp_path / "work")
    assert_user_error(result, "current folder")
    assert len(list(data.iterdir())) == 3


def test_overwrite_refuses_in_the_library_too(tmp_path):
    import zoo

    data = _images(tmp_path / "d")
    fs = zoo.extract(zoo.load("toy/cnn"), str(data), "stage1")
    with pytest.raises(ZooError, match="replacing it would delete"):
        fs.save(tmp_path, overwrite=True)
    assert len(list(data.iterdir())) == 3


def test_merge_refuses_to_overwrite_the_run_it_merges(tmp_path):
    run = tmp_path / "run"
    first = run_zoo("matrix", "toy/cnn", "--data", "synthetic:3", "--layers", "stage1",
                    "--run", str(run), "--out", str(tmp_path / "m"))
    assert first.returncode == 0, first.stderr
    result = run_zoo("matrix", "merge", str(run), "--out", str(run), "--overwrite")
    assert_user_error(result, "replacing it would delete")
    assert (run / "plan.json").exists() or any(run.iterdir())


def test_out_under_a_file_is_refused_before_any_work(tmp_path):
    from zoo.io import check_output_folder

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ZooError, match="is a file"):
        check_output_folder(tmp_path / "afile" / "sub" / "out")


def test_out_in_an_unwritable_folder_is_refused_before_any_work(tmp_path):
    from zoo.io import check_output_folder

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ZooError, match="cannot write"):
        check_output_folder(locked / "out")


def test_float16_storage_beyond_its_range_is_an_error():
    import torch

    import zoo
    from zoo.features.extraction import extract

    big = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))
    with torch.no_grad():
        big[0].weight.fill_(1.0)
        big[0].bias.fill_(1e5)
    model = zoo.wrap(big, ["0"])
    data = zoo.dataset("synthetic:2")
    with pytest.raises(ZooError, match="float16"):
        extract(model, data, ["0"], "gap", dtype="float16", cache=None)
    ok = extract(model, data, ["0"], "gap", dtype="float32", cache=None)["0"]
    assert np.isfinite(ok.data).all() and np.abs(ok.data).max() > np.finfo(np.float16).max
