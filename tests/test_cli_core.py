"""The CLI as a user meets it: listing, info, extract, cache, one-line errors, and user and
environment faults (Ctrl-C, OS errors, invalid train options)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np

from tests.conftest import REPO, assert_user_error, run_without_torch, run_zoo
from tests.test_plugins import _fake_distribution


def test_list_info_and_help_do_not_import_torch():
    run_without_torch(["list"], ["list", "metrics"], ["--help"], ["info", "toy/cnn"])


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


FAULTS = '''
import zoo


@zoo.hookimpl
def register_commands(app):
    @app.command("ctrl-c")
    def ctrl_c() -> None:
        """Act as if the user pressed Ctrl-C."""
        raise KeyboardInterrupt

    @app.command("denied")
    def denied() -> None:
        """Fail as an unwritable folder does."""
        raise PermissionError(13, "Permission denied", "/srv/shared/out")
'''


def test_ctrl_c_prints_the_interrupted_line_and_exits_130(tmp_path):
    _fake_distribution(tmp_path, "zoo_faults", FAULTS)
    result = run_zoo("ctrl-c", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == ("zoo: error: interrupted; finished work is cached and a "
                                     "rerun resumes")


def test_an_os_error_is_one_line_with_the_way_out(tmp_path):
    _fake_distribution(tmp_path, "zoo_faults", FAULTS)
    result = run_zoo("denied", env={"PYTHONPATH": str(tmp_path)})
    assert_user_error(result, "Permission denied (/srv/shared/out); fix its permissions")


def _as_a_shell_starts_it() -> None:
    """In the child before exec: SIGINT unblocked and at its default action, as a shell starts
    a command (a signal mask or ignored SIGINT left in the test process would be inherited,
    and then Ctrl-C could never reach zoo)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_during_extraction_then_resume(tmp_path):
    env = {**__import__("os").environ, "ZOO_CACHE_DIR": str(tmp_path)}
    # 256 px one-image batches: a few seconds of extraction to interrupt, whatever the machine
    args = [sys.executable, "-m", "zoo", "extract", "toy/cnn", "--data", "synthetic:400",
            "-l", "stage1", "-b", "1", "--size", "256"]
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # this process's mask, for the record
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_a_shell_starts_it)
    deadline = time.monotonic() + 240
    def finished_ranges() -> int:  # one checksummed line per stored batch of the entry
        return sum(len(p.read_text().splitlines()) for p in tmp_path.glob("parts/*/*.ranges"))

    while finished_ranges() < 5:  # extraction is under way: some batches are stored
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    stored = finished_ranges()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (err, f"signalled after {stored} stored batches", blocked)
    assert "Traceback" not in err and "zoo: error: interrupted; finished work is cached" in err
    assert 0 < finished_ranges() < 400
    rerun = run_zoo("extract", "toy/cnn", "--data", "synthetic:400", "-l", "stage1", "-b", "50",
                    "--size", "256",
                    env={"ZOO_CACHE_DIR": str(tmp_path)})
    assert rerun.returncode == 0, rerun.stderr


def test_train_rejects_size_0_and_a_negative_learning_rate():
    sized = run_zoo("train", "unetpp", "--size", "0", "--random-init")
    assert sized.returncode == 2 and "--size" in sized.stderr and "Traceback" not in sized.stderr
    assert_user_error(run_zoo("train", "unetpp", "--lr", "-1", "--random-init"),
                      "--lr -1.0: the learning rate must be > 0")
