"""Run-folder state decoding uses an allowlist: a class named in state.json is never imported."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from zoo.comparisons.plan import _encode, load_state
from zoo.errors import ZooError
from zoo.registry.host import get_registry


def _write_state(folder, tree) -> None:
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"state": tree, "reason": "", "n": 4}))


def test_a_planted_module_named_in_state_json_is_never_imported(tmp_path, monkeypatch):
    planted = tmp_path / "cwd"
    planted.mkdir()
    marker = tmp_path / "pwned"
    (planted / "evil_state.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(planted))  # what `python -m zoo` does with the cwd
    unit = tmp_path / "run" / "units" / "prepare-l00000"
    _write_state(unit, {"class": "evil_state:Thing", "fields": {}})
    with pytest.raises(ZooError, match="state class 'evil_state:Thing' is not allowed"):
        load_state(unit)
    assert not marker.exists() and "evil_state" not in sys.modules


@pytest.mark.parametrize("name", ["os:system", "subprocess:Popen", "zoo.metrics.base:__class__",
                                  "zoo.metrics.base:np.ndarray"])
def test_only_namespaces_and_dataclasses_of_metrics_are_rebuilt(tmp_path, name):
    unit = tmp_path / "units" / "prepare-l00000"
    _write_state(unit, {"class": name, "fields": {}})
    with pytest.raises(ZooError, match="is not allowed"):
        load_state(unit)


def test_a_real_metric_state_round_trips(tmp_path):
    from zoo.io import write_npy

    metric = get_registry().metric("cka")
    X = np.random.default_rng(0).normal(size=(12, 5))
    arrays: dict = {}
    tree = _encode(metric.prepare(X), arrays, "cka")
    unit = tmp_path / "units" / "prepare-l00000"
    _write_state(unit, tree)
    for name, array in arrays.items():
        write_npy(unit / f"{name}.npy", array)
    state, reason = load_state(unit)
    assert reason == "" and metric.score(state, metric.prepare(X)) == pytest.approx(1.0)


def test_array_names_cannot_leave_the_unit_folder(tmp_path):
    unit = tmp_path / "units" / "prepare-l00000"
    _write_state(unit, {"array": "../../secret"})
    with pytest.raises(ZooError, match="bad array name"):
        load_state(unit)


@pytest.mark.parametrize("text", ["{not json", '{"state": {"list": 3}}', ""])
def test_a_corrupt_state_file_says_how_to_recompute(tmp_path, text):
    unit = tmp_path / "run" / "units" / "prepare-l00003"
    unit.mkdir(parents=True)
    (unit / "state.json").write_text(text)
    done = tmp_path / "run" / "done" / "prepare-l00003.json"
    with pytest.raises(ZooError, match=f"corrupt .*delete {done} and rerun"):
        load_state(unit)
