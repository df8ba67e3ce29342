"""The CLI under user and environment faults: Ctrl-C, OS errors, and invalid train options."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.conftest import REPO, assert_user_error, run_zoo
from tests.test_plugins import _fake_distribution

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


def test_sigint_during_extraction_then_resume(tmp_path):
    env = {**__import__("os").environ, "ZOO_CACHE_DIR": str(tmp_path)}
    args = [sys.executable, "-m", "zoo", "extract", "toy/cnn", "--data", "synthetic:400",
            "-l", "stage1", "-b", "1"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    def finished_ranges() -> int:  # one checksummed line per stored batch of the entry
        return sum(len(p.read_text().splitlines()) for p in tmp_path.glob("parts/*/*.ranges"))

    while not finished_ranges():  # extraction has started storing batches
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "zoo: error: interrupted; finished work is cached" in err
    assert 0 < finished_ranges() < 400
    rerun = run_zoo("extract", "toy/cnn", "--data", "synthetic:400", "-l", "stage1", "-b", "50",
                    env={"ZOO_CACHE_DIR": str(tmp_path)})
    assert rerun.returncode == 0, rerun.stderr


def test_train_rejects_size_0_and_a_negative_learning_rate():
    sized = run_zoo("train", "unetpp", "--size", "0", "--random-init")
    assert sized.returncode == 2 and "--size" in sized.stderr and "Traceback" not in sized.stderr
    assert_user_error(run_zoo("train", "unetpp", "--lr", "-1", "--random-init"),
                      "--lr -1.0: the learning rate must be > 0")
