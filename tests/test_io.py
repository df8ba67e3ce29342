"""`zoo.io.output_folder`: an output folder appears complete or not at all, never mixed."""

from __future__ import annotations

import errno
import os
import stat

import pytest

import zoo.io
from zoo.errors import ZooError
from zoo.io import output_folder, write_json, write_text


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_success_renames_the_built_folder_into_place(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with output_folder(out) as folder:
        assert folder != out and not out.exists()
        write_json(folder / "results.json", {"x": 1})
    assert (out / "results.json").is_file() and _leftovers(out.parent) == []


def test_a_failed_run_leaves_nothing_not_even_parents(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError), output_folder(out) as folder:
        write_text(folder / "half.txt", "partial")
        raise RuntimeError("the run failed")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rerun_keeps_the_old_folder_whole(tmp_path):
    out = tmp_path / "run"
    with output_folder(out) as folder:
        write_text(folder / "cut.json", "old")
    with pytest.raises(RuntimeError), output_folder(out, overwrite=True) as folder:
        write_text(folder / "eigenvectors.npy", "new")
        raise RuntimeError("failed half way")
    assert sorted(p.name for p in out.iterdir()) == ["cut.json"]
    assert _leftovers(tmp_path) == []


def test_existing_folder_is_refused_unless_overwrite_which_replaces_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.html").write_text("old report")
    with pytest.raises(ZooError, match="already exists and is not empty; pass overwrite=True"):
        with output_folder(out):
            pytest.fail("the block must not run")
    with output_folder(out, overwrite=True) as folder:
        write_text(folder / "results.csv", "new")
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
    assert _leftovers(tmp_path) == []


def test_an_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "run").mkdir()
    with output_folder(tmp_path / "run") as folder:
        write_text(folder / "x.txt", "x")
    assert (tmp_path / "run" / "x.txt").read_text() == "x"


def test_a_file_in_the_way_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        with pytest.raises(ZooError, match="file"):
            with output_folder(out):
                pytest.fail("the block must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_unwritable_parent_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo.io.os, "access", lambda path, mode: False)
    with pytest.raises(ZooError, match="cannot write in .*permission denied"):
        with output_folder(tmp_path / "run"):
            pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_message_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zoo.io.os, "fsync", no_space)
    with pytest.raises(ZooError,
                       match="cannot write the output folder .*No space left on device.*free"):
        with output_folder(tmp_path / "run") as folder:
            write_text(folder / "report.html", "x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_output_honours_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        with output_folder(tmp_path / "run") as folder:
            write_text(folder / "report.html", "shared")
            (folder / "figures").mkdir()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o775
    assert stat.S_IMODE((tmp_path / "run" / "report.html").stat().st_mode) == 0o664
