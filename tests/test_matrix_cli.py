"""`zoo matrix --run/--shard/--workers` and `zoo matrix merge` end to end on the toy family."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, assert_user_error, run_zoo

JOB = ("matrix", "toy/cnn", "toy/vit", "--data", "synthetic:12", "--batch-size", "4",
       "--samples-per-unit", "4", "--block", "3")


def values(folder):
    return np.array(json.loads((folder / "matrix.json").read_text())["values"], dtype=float)


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsharded")
    out = root / "out"
    result = run_zoo(*JOB, "--out", str(out), "--json",
                     env={"ZOO_CACHE_DIR": str(root / "cache")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == 12
    return values(out)


@pytest.mark.slow
def test_two_concurrent_shards_then_merge_equal_the_unsharded_run(tmp_path, unsharded):
    run = tmp_path / "run"
    shards = [subprocess.Popen([sys.executable, "-m", "zoo", *JOB, "--run", str(run), "--shard",
                                f"{k}/2"], cwd=REPO, env=dict(os.environ), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for k in range(2)]
    for shard in shards:
        _, err = shard.communicate(timeout=300)
        assert shard.returncode == 0, err
        assert "zoo matrix merge" in err
    merged = run_zoo("matrix", "merge", str(run), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    np.testing.assert_array_equal(values(tmp_path / "merged"), unsharded)
    assert (tmp_path / "merged" / "matrix.png").exists()
    assert (run / "plan.json").exists()  # the run folder itself is left as it was


@pytest.mark.slow
def test_workers_on_one_machine_equal_the_unsharded_run(tmp_path, unsharded):
    out = tmp_path / "out"
    result = run_zoo(*JOB, "--run", str(tmp_path / "run"), "--workers", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(values(out), unsharded)


def test_shard_comes_from_torchrun_variables_and_merge_refuses_an_unfinished_run(tmp_path):
    run = tmp_path / "run"
    alone = run_zoo(*JOB, "--run", str(run), "--wait", "0",
                    env={"RANK": "1", "WORLD_SIZE": "2"})
    # rank 1 did its extract units, then found rank 0's missing
    assert_user_error(alone, "prepare-l00001 needs extract-m000-s000000000")
    assert_user_error(run_zoo("matrix", "merge", str(run)), "units missing",
                      "extract-m000-s000000000")
    assert_user_error(run_zoo("matrix", "merge", str(tmp_path)), "not a matrix run folder")
    assert_user_error(run_zoo(*JOB, "--run", str(run), "--block", "4"), "differs in")


def test_a_corrupt_plan_is_one_line_naming_the_way_out(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "plan.json").write_text('{"format": 1, "models": [')
    assert_user_error(run_zoo("matrix", "merge", str(run)), "plan.json is corrupt",
                      "delete the run folder")
