"""Plugin discovery through entry points, isolation of broken plugins at import and at every call
(loaders, layers(), metrics, hooks with fewer arguments), strict and disable modes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_user_error, run_zoo


def _fake_distribution(site: Path, name: str, module_source: str) -> None:
    """Install a one-module distribution with a `zoo` entry point into `site` (no network)."""
    (site / f"{name}.py").write_text(module_source)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{name} = {name}\n")


@pytest.fixture
def broken_site(tmp_path: Path) -> dict[str, str]:
    _fake_distribution(tmp_path, "zoo_broken", "raise RuntimeError('boom at import')\n")
    _fake_distribution(tmp_path, "zoo_badhook", (
        "import zoo\n@zoo.hookimpl\ndef register_models(register):\n"
        "    register('not a spec')\n"))
    return {"PYTHONPATH": str(tmp_path)}


def test_broken_plugins_are_reported_and_never_stop_zoo_list(broken_site):
    result = run_zoo("list", env=broken_site)
    assert result.returncode == 0, result.stderr
    assert "toy/cnn" in result.stdout
    assert "plugin 'zoo_broken' failed to load: RuntimeError: boom at import" in result.stderr
    assert "plugin 'zoo_badhook' raised in register_models" in result.stderr
    listing = run_zoo("plugins", "--json", env=broken_site)
    failed = {p["name"] for p in __import__("json").loads(listing.stdout) if p["error"]}
    assert {"zoo_broken", "zoo_badhook"} <= failed


def test_strict_mode_makes_a_broken_plugin_fatal(broken_site):
    result = run_zoo("list", env={**broken_site, "ZOO_STRICT_PLUGINS": "1"})
    assert_user_error(result, "zoo_broken", "ZOO_STRICT_PLUGINS")


def test_disabled_plugins_are_skipped(broken_site):
    env = {**broken_site, "ZOO_DISABLE_PLUGINS": "zoo_broken,zoo_badhook,toy"}
    result = run_zoo("list", "--json", env=env)
    assert result.returncode == 0 and result.stderr == ""
    assert "toy/cnn" not in result.stdout


def test_duplicate_registration_is_reported(tmp_path):
    _fake_distribution(tmp_path, "zoo_dupe", (
        "import zoo\nfrom zoo.plugins.toy import cnn_layers, _load\n@zoo.hookimpl\n"
        "def register_models(register):\n"
        "    register(zoo.ModelSpec('toy', 'cnn', _load, cnn_layers))\n"))
    result = run_zoo("list", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0
    assert "'toy/cnn' is already registered" in result.stderr


def test_example_plugin_is_discovered_through_its_entry_point(tmp_path):
    """Install examples/zoo-example-plugin for real (pip, no network) and use it from the CLI."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--no-build-isolation", "--quiet", "--target", str(target),
                          str(REPO / "examples" / "zoo-example-plugin")],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    assert list(target.glob("zoo_example_plugin-*.dist-info"))
    env = {"PYTHONPATH": str(target)}
    listing = run_zoo("plugins", "--json", env=env)
    example = [p for p in __import__("json").loads(listing.stdout) if p["name"] == "example"]
    assert example and example[0]["source"] == "zoo-example-plugin"
    assert example[0]["registered"] == ["model:patchmlp/tiny"]
    assert_user_error(run_zoo("extract", "patchmlp", env=env), "--random-init")
    extracted = run_zoo("extract", "patchmlp", "--random-init", "--data", "synthetic:4",
                        "--json", env=env)
    assert extracted.returncode == 0, extracted.stderr
    assert '"random_init": true' in extracted.stdout


def test_a_trained_default_checkpoint_becomes_its_familys_default(tmp_path, monkeypatch):
    """`zoo train ... default` output (zoo.json) registers as family/arch.tag and wins `toy`."""
    import json

    from zoo.registry.host import get_registry, reset_registry

    folder = tmp_path / "checkpoints" / "toy__cnn.mine"
    folder.mkdir(parents=True)
    from zoo.plugins.toy import cnn_layers

    (folder / "zoo.json").write_text(json.dumps({
        "id": "toy/cnn.mine", "base": "toy/cnn", "tag": "mine", "options": {}, "data": "x",
        "default": True, "input": {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                                   "interpolation": "bilinear"},
        "layers": [i.as_dict() for i in cnn_layers()], "train": {}}))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    reset_registry()
    registry = get_registry()
    assert registry.model("toy").id == "toy/cnn.mine"
    assert registry.model("toy/cnn").id == "toy/cnn"
    # asking for random init or other weights means the family's own default
    assert registry.model("toy", prefer_trained=False).id == "toy/cnn"


def test_every_hook_is_typed_documented_and_in_the_readme():
    import inspect

    from zoo.registry import hookspecs

    hooks = [f for name, f in vars(hookspecs).items() if name.startswith("register_")]
    assert {f.__name__ for f in hooks} == {"register_models", "register_model_families",
                                           "register_metrics", "register_datasets",
                                           "register_commands"}
    readme = (REPO / "README.md").read_text()
    for hook in hooks:
        assert inspect.getdoc(hook), hook.__name__
        assert all(p.annotation is not inspect.Parameter.empty
                   for p in inspect.signature(hook).parameters.values()), hook.__name__
        assert f"`{hook.__name__}" in readme, hook.__name__


def test_a_third_party_plugin_can_use_every_hook(tmp_path):
    """One entry-point plugin registers a metric, a dataset and a command; all three work."""
    _fake_distribution(tmp_path, "zoo_allhooks", '''
import numpy as np
import zoo
from zoo.data.sources import synthetic_dataset


class MeanGap:
    name, kind, symmetric = "mean-gap", "distance", True

    def prepare(self, X):
        return np.asarray(X, float).mean()

    def score(self, a, b):
        return abs(a - b)


@zoo.hookimpl
def register_metrics(register):
    register(MeanGap())


@zoo.hookimpl
def register_datasets(register):
    register(zoo.DatasetSpec("eight", lambda arg: synthetic_dataset("shapes", 8),
                             "eight synthetic images"))


@zoo.hookimpl
def register_commands(app):
    @app.command("hello")
    def hello() -> None:
        """Say hello."""
        print("hello from a plugin")
''')
    env = {"PYTHONPATH": str(tmp_path)}
    assert run_zoo("hello", env=env).stdout.strip() == "hello from a plugin"
    assert "mean-gap" in run_zoo("list", "metrics", "--json", env=env).stdout
    out = tmp_path / "cmp"
    result = run_zoo("compare", "toy/cnn", "toy/cnn", "--data", "eight", "--metric", "mean-gap",
                     "--images", "0", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    rows = __import__("json").loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 25 and all(r["value"] == 0.0 for r in rows if r["layer_a"] == r["layer_b"])


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
