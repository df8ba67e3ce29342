"""Plugins isolated at every call: exit and print at import, raising loaders, layers() and
metrics, hooks that declare fewer arguments, and metrics rejected at registration."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_user_error, run_zoo
from tests.test_plugins import _fake_distribution

BAD_MODEL = '''
import zoo
from zoo.plugins.toy import cnn_layers


def load(spec, **kwargs):
    raise RuntimeError("loader exploded:\\n  deep detail line")


def layers():
    raise KeyError("no such table")


@zoo.hookimpl
def register_models(register):
    register(zoo.ModelSpec("badload", "x", load, cnn_layers))
    register(zoo.ModelSpec("badlayers", "x", load, layers))
'''

BAD_METRIC = '''
import zoo


class Boom:
    name, kind, symmetric = "boom", "similarity", True

    def prepare(self, X):
        return X

    def score(self, a, b):
        raise ZeroDivisionError("metric bug")


class NoKind:
    name = "no-kind"

    def prepare(self, X):
        return X

    def score(self, a, b):
        return 0.0


@zoo.hookimpl
def register_metrics(register):
    register(Boom())
    register(NoKind())
'''


@pytest.fixture
def site(tmp_path):
    _fake_distribution(tmp_path, "zoo_exits", "import sys\nsys.exit(3)\n")
    _fake_distribution(tmp_path, "zoo_chatty", (
        "import zoo\nprint('hello from import')\n@zoo.hookimpl\n"
        "def register_datasets(register):\n    print('hello from a hook')\n"))
    _fake_distribution(tmp_path, "zoo_badmodel", BAD_MODEL)
    _fake_distribution(tmp_path, "zoo_badmetric", BAD_METRIC)
    _fake_distribution(tmp_path, "zoo_fewargs", (
        "import zoo\n@zoo.hookimpl\ndef register_commands():\n    print('fewargs: commands ran')\n"
        "@zoo.hookimpl\ndef register_models():\n    print('fewargs: models ran')\n"))
    return {"PYTHONPATH": str(tmp_path)}


def test_exit_and_print_at_import_neither_stop_nor_pollute_json(site):
    result = run_zoo("list", "--json", env=site)
    assert result.returncode == 0, result.stderr
    ids = {m["id"] for m in json.loads(result.stdout)}  # stdout is pure JSON
    assert "toy/cnn" in ids and "badload/x" in ids
    assert "plugin 'zoo_exits' failed to load: SystemExit: 3" in result.stderr
    assert "hello from import" in result.stderr and "hello from a hook" in result.stderr


def test_hooks_get_only_the_arguments_they_declare(site):
    result = run_zoo("plugins", "--json", env=site)
    fewargs = next(p for p in json.loads(result.stdout) if p["name"] == "zoo_fewargs")
    assert fewargs["error"] == ""
    # both hooks were called (with none of the arguments they did not declare)
    assert "fewargs: models ran" in result.stderr and "fewargs: commands ran" in result.stderr


def test_a_metric_without_kind_is_rejected_at_registration(site):
    result = run_zoo("list", "metrics", "--json", env=site)
    assert result.returncode == 0, result.stderr
    names = {m["name"] for m in json.loads(result.stdout)}
    assert "boom" in names and "no-kind" not in names
    assert ("plugin 'zoo_badmetric' raised in register_metrics: TypeError: metric"
            in result.stderr and "lacks kind" in result.stderr)


def test_a_raising_loader_is_one_line_naming_the_plugin(site):
    result = run_zoo("extract", "badload/x", "--data", "synthetic:2", env=site)
    assert_user_error(result, "plugin 'zoo_badmodel': loading badload/x failed: RuntimeError: "
                      "loader exploded: deep detail line")


def test_a_raising_layers_call_is_one_line_naming_the_plugin(site):
    result = run_zoo("info", "badlayers/x", env=site)
    assert_user_error(result, "plugin 'zoo_badmodel': layers() of badlayers/x failed: KeyError")


def test_a_raising_metric_is_one_line_naming_the_plugin(site, tmp_path):
    result = run_zoo("compare", "toy/cnn", "toy/vit", "--data", "synthetic:4", "--metric",
                     "boom", "--images", "0", "--out", str(tmp_path / "out"), env=site)
    assert_user_error(result, "plugin 'zoo_badmetric': metric 'boom' score failed: "
                      "ZeroDivisionError: metric bug")


def test_registry_rejects_bad_metric_names_and_kinds():
    from zoo.registry.host import PluginInfo, get_registry

    registry, info = get_registry(), PluginInfo("p", "test", "m")

    class Metric:
        name, kind = "Bad Name", "similarity"
        prepare = score = staticmethod(lambda *a: 0)

    with pytest.raises(TypeError, match="kebab-case"):
        registry._add_metric(info, Metric())
    Metric.name, Metric.kind = "fine", "closeness"
    with pytest.raises(TypeError, match="kind 'closeness' must be one of similarity, distance"):
        registry._add_metric(info, Metric())
