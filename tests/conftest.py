"""Shared fixtures: an isolated cache root and a fresh plugin registry for every test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own ZOO_CACHE_DIR and a registry loaded from scratch."""
    from zoo.registry.host import reset_registry

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path_factory.mktemp("zoo-cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: no test may reach a hub
    for var in ("ZOO_STRICT_PLUGINS", "ZOO_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    reset_registry()
    yield
    reset_registry()


def run_zoo(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            process: bool = False) -> subprocess.CompletedProcess:
    """Run the zoo CLI with ARGS and capture its exit code and output. In this process by
    default (fast: torch and the plugins are loaded once); in a `python -m zoo` subprocess, as
    a user would, when `process` is set or `env` is given (a separate environment, plugins on
    another PYTHONPATH, start-up imports, signals: where the process is the point)."""
    if process or env is not None:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True,
                              text=True, env=full_env, cwd=cwd or REPO, timeout=600)
    return _run_in_process(list(args), cwd or REPO)


def _run_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    import contextlib
    import io

    from zoo.cli.app import main
    from zoo.registry.host import reset_registry

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    code = 0
    reset_registry()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(previous)
        reset_registry()
    return subprocess.CompletedProcess(["zoo", *args], code, out.getvalue(), err.getvalue())


def run_without_torch(*argvs: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI once per argv in one fresh interpreter (each must exit 0) and check it never
    imported torch: the fast start-up path of listing and help."""
    code = ("import sys\nfrom zoo.cli.app import main\n"
            f"for argv in {[list(a) for a in argvs]!r}:\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n"
            "        assert e.code == 0, (argv, e.code)\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("NO-TORCH"), result.stderr
    return result


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2, one `zoo: error:` line naming the problem, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith("zoo: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
