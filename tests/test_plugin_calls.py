"""The plugin call guard: a forward that raises, a loader that returns nothing, a metric that
returns a complex number, an array, inf or a block of the wrong shape all end as one ZooError
naming the plugin; a plugin's non-daemon thread never keeps zoo from exiting, and what a plugin
writes to file descriptor 1 never reaches zoo's --json output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_plugins import _fake_distribution
from zoo.errors import ZooError


def _register_model(loader, layers=None):
    from zoo.plugins.toy import cnn_layers
    from zoo.registry.host import PluginInfo, get_registry
    from zoo.registry.specs import ModelSpec

    registry = get_registry()
    info = PluginInfo("zoo_hostile", "test", "zoo_hostile")
    registry._add_model(info, ModelSpec("hostile", "x", loader, layers or cnn_layers))
    return registry.model("hostile/x")


def test_a_loader_returning_nothing_is_one_error_naming_the_plugin():
    spec = _register_model(lambda spec, **kw: None)
    with pytest.raises(ZooError, match="plugin 'zoo_hostile': loading hostile/x returned "
                                       "NoneType, not a ZooModel"):
        spec.load()


def test_a_forward_that_raises_is_one_error_naming_the_model():
    import zoo

    def load(spec, **kw):
        model = zoo.load("toy/cnn")
        model.spec = spec

        def explode(x):
            raise RuntimeError("forward exploded")

        model.run = explode
        return model

    spec = _register_model(load)
    with pytest.raises(ZooError, match="hostile/x: the forward pass failed: RuntimeError: "
                                       "forward exploded"):
        zoo.extract(spec.load(), "synthetic:2", "stage1", cache=False)


class _Metric:
    name, kind, symmetric = "hostile", "similarity", True

    def __init__(self, value=None, block=None) -> None:
        self.value, self.block = value, block

    def prepare(self, X):
        return X

    def score(self, a, b):
        return self.value

    def score_block(self, states_a, states_b=None):
        return self.block


def _guarded(metric):
    from zoo.registry.host import GuardedMetric

    return GuardedMetric(metric, "zoo_hostile")


@pytest.mark.parametrize("value, needle", [
    (1 + 2j, "complex"), (np.ones(3), "array"), (float("inf"), "inf"), ("0.5", "str"),
])
def test_a_metric_score_that_is_not_a_real_number_is_refused(value, needle):
    from zoo.engine.allpairs import all_pairs

    x = [np.random.default_rng(0).normal(size=(6, 3))]
    with pytest.raises(ZooError, match=f"plugin 'zoo_hostile': metric 'hostile' score returned"
                                       f".*{needle}"):
        all_pairs(_guarded(_Metric(value=value)), x, x)


def test_nan_stays_an_undefined_value():
    from zoo.engine.allpairs import all_pairs

    x = [np.random.default_rng(0).normal(size=(6, 3))]
    values, reasons = all_pairs(_guarded(_Metric(value=float("nan"))), x, x)
    assert np.isnan(values).all() and reasons[0, 0]


def test_a_score_block_of_the_wrong_shape_is_refused():
    from zoo.engine.allpairs import all_pairs

    x = [np.random.default_rng(k).normal(size=(6, 3)) for k in range(3)]
    with pytest.raises(ZooError, match=r"score_block returned shape \(2, 2\); expected \(3, 2\)"):
        all_pairs(_guarded(_Metric(block=np.zeros((2, 2)))), x, x[:2])
    with pytest.raises(ZooError, match="complex"):
        all_pairs(_guarded(_Metric(block=np.zeros((3, 2), complex))), x, x[:2])
    values, _ = all_pairs(_guarded(_Metric(block=np.full((3, 2), 0.5))), x, x[:2])
    assert (values == 0.5).all()


HOSTILE = '''
import os, threading, time
import zoo

os.write(1, b"junk written to fd 1 at import\\n")
threading.Thread(target=time.sleep, args=(3600,), name="plugin-sleeper").start()


@zoo.hookimpl
def register_datasets(register):
    os.write(1, b"junk written to fd 1 in a hook\\n")
'''


def test_fd1_writes_and_non_daemon_threads_neither_corrupt_json_nor_hang(tmp_path):
    _fake_distribution(tmp_path, "zoo_hostile_site", HOSTILE)
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "zoo", "list", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "toy/cnn" in {m["id"] for m in json.loads(result.stdout)}  # stdout is pure JSON
    assert "junk written to fd 1 at import" in result.stderr
    assert "junk written to fd 1 in a hook" in result.stderr
    assert "plugin-sleeper" in result.stderr  # named in the warning when zoo exits anyway
