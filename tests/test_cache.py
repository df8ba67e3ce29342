"""Feature cache: hits, content keys, corruption detection and resuming after an interruption;
under faults: resumes across batch sizes, corrupt or empty parts, concurrent writers, a full disk,
umask, float16 storage, and plugin declarations checked before any hit."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo.features.cache
from tests.conftest import REPO, assert_user_error, run_zoo
from zoo.data.sources import synthetic
from zoo.errors import DataError, ZooError
from zoo.features.cache import FeatureCache
from zoo.features.extraction import extract
from zoo.registry.host import get_registry


class CountingModel:
    """Wraps a ZooModel and counts forward passes (and can fail at a chosen batch)."""

    def __init__(self, model, fail_at: int | None = None) -> None:
        self._model, self.calls, self.fail_at = model, 0, fail_at

    def __getattr__(self, name):
        return getattr(self._model, name)

    def forward_layers(self, x, layers, stop_early=True):
        if self.fail_at is not None and self.calls == self.fail_at:
            self.calls += 1
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        return self._model.forward_layers(x, layers, stop_early)


@pytest.fixture
def toy():
    return get_registry().model("toy/cnn").load()


def test_second_extraction_is_served_from_the_cache(toy):
    cache, data = FeatureCache(), synthetic("10")
    first = CountingModel(toy)
    a = extract(first, data, ["stage1", "stage3"], "gap", batch_size=4, cache=cache)
    assert first.calls == 3
    second = CountingModel(toy)
    b = extract(second, data, ["stage1", "stage3"], "gap", batch_size=4, cache=cache)
    assert second.calls == 0
    np.testing.assert_array_equal(a["stage3"].data, b["stage3"].data)
    assert b["stage3"].sample_ids == data.ids


def test_key_covers_reduction_and_data(toy):
    cache = FeatureCache()
    extract(toy, synthetic("4"), ["stage1"], "gap", cache=cache)
    counting = CountingModel(toy)
    extract(counting, synthetic("4"), ["stage1"], "grid:2", cache=cache)
    extract(counting, synthetic("5"), ["stage1"], "gap", cache=cache)
    assert counting.calls == 2
    assert len(cache.entries()) == 3


def test_corrupt_entry_is_detected_and_recomputed(toy):
    cache, data = FeatureCache(), synthetic("4")
    good = extract(toy, data, ["stage2"], "gap", cache=cache)["stage2"].data
    array = next(Path(cache.root).rglob("features.npy"))
    raw = bytearray(array.read_bytes())
    raw[-8:] = b"\x00" * 8  # same size, different content
    array.write_bytes(bytes(raw))
    counting = CountingModel(toy)
    again = extract(counting, data, ["stage2"], "gap", cache=cache)["stage2"].data
    assert counting.calls == 1
    np.testing.assert_array_equal(good, again)
    array.write_bytes(array.read_bytes()[:40])  # truncated
    assert cache.get(cache.entries()[0]["key"]) is None


def test_interrupted_extraction_resumes_only_unfinished_batches(toy):
    cache, data = FeatureCache(), synthetic("10")
    killed = CountingModel(toy, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        extract(killed, data, ["stage1"], "gap", batch_size=3, cache=cache)
    assert cache.entries() == []  # nothing looks complete
    resumed = CountingModel(toy)
    out = extract(resumed, data, ["stage1"], "gap", batch_size=3, cache=cache)
    assert resumed.calls == 2  # batches 2 and 3 of 4
    fresh = extract(toy, data, ["stage1"], "gap", batch_size=3, cache=None)
    np.testing.assert_array_equal(out["stage1"].data, fresh["stage1"].data)


def test_nan_features_are_refused_and_never_cached(toy):
    toy.module.stages[0][0].weight.data[:] = float("nan")
    cache = FeatureCache()
    with pytest.raises(ZooError, match=r"toy/cnn:stage2 produced NaN/inf features for 2 "
                                       r"samples \(e\.g\. \['shapes/00000'"):
        extract(toy, synthetic("2"), ["stage2"], "gap", cache=cache)
    assert cache.entries() == []


def test_unreadable_image_names_the_file(toy, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"nope")
    from zoo.data.sources import image_folder

    with pytest.raises(DataError, match="broken.png"):
        extract(toy, image_folder(str(tmp_path)), ["stage1"], "gap")


def _interrupted(toy, cache, data, batch_size=3, fail_at=2, layers=("stage1",)) -> None:
    with pytest.raises(KeyboardInterrupt):
        extract(CountingModel(toy, fail_at=fail_at), data, list(layers), "gap",
                batch_size=batch_size, cache=cache)


def _parts(cache: FeatureCache) -> list[Path]:
    """Data files of unfinished entries."""
    return sorted(Path(cache.root).glob("parts/*/data-*.npy"))


def _ranges(cache: FeatureCache) -> list[tuple[int, int]]:
    """Finished sample ranges recorded beside the data files."""
    lines = [ln.split() for p in Path(cache.root).glob("parts/*/data-*.ranges")
             for ln in p.read_text().splitlines()]
    return sorted((int(a), int(b)) for a, b, _ in lines)


def test_resume_with_another_batch_size_reuses_the_finished_ranges(toy):
    cache, data = FeatureCache(), synthetic("10")
    _interrupted(toy, cache, data)  # samples 0-3 and 3-6 are stored
    assert _ranges(cache) == [(0, 3), (3, 6)] and len(_parts(cache)) == 1
    resumed = CountingModel(toy)
    out = extract(resumed, data, ["stage1"], "gap", batch_size=4, cache=cache)["stage1"]
    assert resumed.calls == 1  # samples 6-10 only
    fresh = extract(toy, data, ["stage1"], "gap", cache=None)["stage1"]
    np.testing.assert_allclose(out.data, fresh.data, rtol=1e-5)  # batch size moves the ulps
    assert out.sample_ids == data.ids and _parts(cache) == []
    again = CountingModel(toy)  # and the entry is complete for any later batch size
    extract(again, data, ["stage1"], "gap", batch_size=7, cache=cache)
    assert again.calls == 0


@pytest.mark.parametrize("damage, calls", [("flip", 3), ("torn", 3), ("empty", 4),
                                           ("rows", 4), ("sidecar", 4)])
def test_a_damaged_part_is_recomputed_not_sealed(toy, damage, calls):
    cache, data = FeatureCache(), synthetic("10")
    _interrupted(toy, cache, data)
    part = _parts(cache)[0]
    header = len(part.read_bytes()) - 10 * 8 * 4  # 10 samples x 8 float32 channels
    raw = bytearray(part.read_bytes())
    if damage == "flip":  # a bit of sample 1 (range 0-3) changed on disk
        raw[header + 8 * 4 + 5] ^= 0xFF
        part.write_bytes(bytes(raw))
    elif damage == "torn":  # range 0-3 never reached the disk (zeros, as after a crash)
        raw[header:header + 3 * 8 * 4] = bytes(3 * 8 * 4)
        part.write_bytes(bytes(raw))
    elif damage == "empty":
        part.write_bytes(b"")
    elif damage == "rows":  # a valid array with the wrong row count
        np.save(part, np.zeros((9, 8), np.float32))
    else:  # the checksums beside it are garbage
        part.with_suffix(".ranges").write_text("0 3 zz\n3 6\n")
    resumed = CountingModel(toy)
    out = extract(resumed, data, ["stage1"], "gap", batch_size=3, cache=cache)["stage1"]
    assert resumed.calls == calls  # samples 0-3 again (and 3-6 if the file is unusable)
    fresh = extract(toy, data, ["stage1"], "gap", batch_size=3, cache=None)["stage1"]
    np.testing.assert_array_equal(out.data, fresh.data)
    assert FeatureCache().get(FeatureCache().entries()[0]["key"]) is not None


def test_empty_part_never_makes_the_cli_exit_130(tmp_path):
    env = {"ZOO_CACHE_DIR": str(tmp_path)}
    folder = tmp_path / "parts" / ("0" * 32)
    first = run_zoo("extract", "toy/cnn", "--data", "synthetic:6", "-l", "stage1", "-b", "2",
                    env=env)
    assert first.returncode == 0, first.stderr
    entry = next((tmp_path / "features").iterdir())
    folder = tmp_path / "parts" / entry.name  # an interrupted twin: an empty data file
    folder.mkdir(parents=True)
    (folder / "data-dead.npy").write_bytes(b"")
    (folder / "data-dead.ranges").write_text(f"0 2 {'0' * 16}\n")
    import shutil

    shutil.rmtree(entry)
    for _ in range(2):
        again = run_zoo("extract", "toy/cnn", "--data", "synthetic:6", "-l", "stage1", "-b",
                        "2", env=env)
        assert again.returncode == 0, again.stderr


def test_cache_rm_model_removes_unfinished_entries_too(toy, tmp_path):
    cache = FeatureCache(tmp_path)
    _interrupted(toy, cache, synthetic("10"))
    assert cache.entries() == [] and len(cache.unfinished()) == 1
    result = run_zoo("cache", "rm", "--model", "toy", env={"ZOO_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "removed 1 entries" in result.stdout
    assert cache.unfinished() == [] and _parts(cache) == []


WRITER = """
import sys
from zoo.features.cache import FeatureCache
from zoo.data.sources import synthetic
from zoo.features.extraction import extract
from zoo.registry.host import get_registry

model = get_registry().model("toy/cnn").load()
extract(model, synthetic("24"), ["stem", "stage1", "stage2"], "grid:2", batch_size=2,
        cache=FeatureCache())
print("ok")
"""


def test_two_processes_writing_one_entry_both_succeed(tmp_path):
    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path)}
    for trial in range(3):
        procs = [subprocess.Popen([sys.executable, "-c", WRITER], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for proc, (out, err) in zip(procs, outs):
            assert proc.returncode == 0 and out.strip() == "ok", (trial, err)
        cache = FeatureCache(tmp_path)
        entries = cache.entries()
        assert len(entries) == 3 and cache.unfinished() == []
        assert all(cache.get(e["key"]) is not None for e in entries)
        assert not list((tmp_path / "features").glob(".*"))  # no temporary folder left
        cache.remove()


def test_full_disk_is_one_line_with_the_way_out(toy, monkeypatch):
    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zoo.features.cache.os, "pwrite", no_space)
    with pytest.raises(ZooError, match="No space left on device.*free space.*cache=False"):
        extract(toy, synthetic("4"), ["stage1"], "gap", cache=FeatureCache())
    assert not [p for p in Path(FeatureCache().root).rglob("*") if p.is_file()]


def test_full_disk_through_the_cli(tmp_path):
    code = ("import errno, os, sys\nimport zoo.io\n"
            "def full(*args):\n    raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "zoo.io.os.pwrite = full\nfrom zoo.cli.app import main\n"
            "main(['extract', 'toy/cnn', '--data', 'synthetic:4', '-l', 'stage1'])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "ZOO_CACHE_DIR": str(tmp_path)})
    assert_user_error(result, "No space left on device", "--no-cache")


def test_cache_dir_that_is_a_file_or_under_one(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for root in (blocker, blocker / "sub"):
        result = run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "-l", "stage1",
                         env={"ZOO_CACHE_DIR": str(root)})
        assert_user_error(result, str(blocker))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_cache_dir_not_writable(tmp_path):
    tmp_path.chmod(0o555)
    try:
        result = run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "-l", "stage1",
                         env={"ZOO_CACHE_DIR": str(tmp_path / "cache")})
        assert_user_error(result, "Permission denied", "ZOO_CACHE_DIR")
    finally:
        tmp_path.chmod(0o755)


def test_cache_files_honour_the_umask(toy):
    old = os.umask(0o002)
    try:
        cache = FeatureCache()
        _interrupted(toy, cache, synthetic("10"))
        extract(toy, synthetic("10"), ["stage1", "stage2"], "gap", cache=cache)
    finally:
        os.umask(old)
    paths = list(Path(cache.root).rglob("*"))
    assert paths
    for p in paths:
        want = 0o775 if p.is_dir() else 0o664
        assert stat.S_IMODE(p.stat().st_mode) == want, p


def test_float16_storage_is_keyed_and_halves_the_entry(toy):
    cache, data = FeatureCache(), synthetic("6")
    full = extract(toy, data, ["stage2"], "grid:2", cache=cache)["stage2"]
    half = extract(toy, data, ["stage2"], "grid:2", cache=cache, dtype="float16")["stage2"]
    by_dtype = {e["dtype"]: e for e in cache.entries()}
    assert set(by_dtype) == {"float32", "float16"}
    assert by_dtype["float16"]["bytes"] < 0.75 * by_dtype["float32"]["bytes"]
    assert half.data.dtype == np.float32 and half.meta["dtype"] == "float16"
    np.testing.assert_allclose(half.data, full.data, rtol=1e-3, atol=1e-3)
    again = CountingModel(toy)
    cached = extract(again, data, ["stage2"], "grid:2", cache=cache, dtype="float16")["stage2"]
    assert again.calls == 0
    np.testing.assert_array_equal(cached.data, half.data)
    with pytest.raises(ZooError, match="float64"):
        extract(toy, data, ["stage2"], "gap", dtype="float64")


def _declare(model, name: str, **changes) -> None:
    model.layers[name] = dataclasses.replace(model.layers[name], **changes)


def test_a_wrong_module_path_fails_even_when_features_are_cached(toy):
    cache, data = FeatureCache(), synthetic("4")
    extract(toy, data, ["stage1"], "gap", cache=cache)
    _declare(toy, "stage1", module="stages.9")
    with pytest.raises(ZooError, match=r"stage1: module 'stages\.9' is not in the network"):
        extract(toy, data, ["stage1"], "gap", cache=cache)


def test_the_declaration_is_part_of_the_key(toy):
    cache, data = FeatureCache(), synthetic("4")
    first = extract(toy, data, ["stage1"], "gap", cache=cache)["stage1"]
    _declare(toy, "stage1", module="stages.1", channels=16)  # pointed at another module
    second = CountingModel(toy)
    moved = extract(second, data, ["stage1"], "gap", cache=cache)["stage1"]
    assert second.calls == 1 and moved.data.shape[1] == 16 != first.data.shape[1]


@pytest.mark.parametrize("changes, needle", [
    ({"channels": 9}, "declared NCHW with 9 channels"),
    ({"layout": "NLC"}, "declared NLC with 8 channels"),
    ({"layout": "NC"}, "declared NC with 8 channels"),
    ({"role": "brain"}, "role 'brain' is not a known role"),
])
def test_declarations_are_checked_against_the_first_batch(toy, changes, needle):
    _declare(toy, "stage1", **changes)
    with pytest.raises(ZooError, match=needle):
        extract(toy, synthetic("4"), ["stage1"], "gap", cache=FeatureCache())
