"""The house rules of issue 20: bound metrics are metrics, compare takes feature sets, one
layer selector, checked plugin hooks, a core that never imports the CLI, and one result protocol
(table / to_dict / save / short repr / zoo.open)."""

import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

import zoo
import zoo.metrics
from zoo.errors import UnknownNameError, ZooError
from zoo.model.selection import select_for
from zoo.registry import host
from zoo.registry.specs import LayerInfo


@pytest.fixture(scope="module")
def sets():
    cnn = zoo.load("toy/cnn", random_init=True)
    vit = zoo.load("toy/vit", random_init=True)
    return (zoo.extract(cnn, "samples", cache=False), zoo.extract(vit, "samples", cache=False),
            cnn)


def test_a_bound_metric_is_a_metric_everywhere(sets):
    a, b, _ = sets
    shape = zoo.metrics.get("shape", alpha=1.0)
    c = zoo.compare(a, b, [shape])
    direct = zoo.metrics.compute("shape", a.arrays()[0], b.arrays()[0], alpha=1.0)
    assert c.results["shape"].values[0, 0] == pytest.approx(direct, rel=1e-9)
    default = zoo.compare(a, b, ["shape"]).results["shape"].values[0, 0]
    assert default != pytest.approx(direct, rel=1e-6)  # the option reached the engine
    m = zoo.metrics.matrix(shape, a.arrays()[:1], b.arrays()[:1])
    assert m[0, 0] == pytest.approx(direct, rel=1e-9)


def test_compare_takes_two_feature_sets_and_refuses_mismatches(sets):
    a, b, cnn = sets
    with pytest.raises(ZooError, match="compare_models"):
        zoo.compare("toy/cnn", "toy/vit")
    cls = zoo.extract(zoo.load("toy/vit", random_init=True), "samples", reduction="cls",
                      cache=False)
    with pytest.raises(ZooError, match="same reduction"):
        zoo.compare(a, cls)
    other = zoo.extract(cnn, "synthetic:8", cache=False)
    with pytest.raises(ZooError, match="same data"):
        zoo.compare(a, other)


def test_one_layer_selector_rule():
    models = {"cnn": ["stage1", "stage2"], "vit": ["block0", "block1"]}
    # a pattern may match in one model only, as long as each model keeps a layer
    assert select_for(models, ["stage1", "block*"]) == {"cnn": ["stage1"],
                                                        "vit": ["block0", "block1"]}
    with pytest.raises(UnknownNameError, match="stage9.*did you mean"):
        select_for(models, ["stage9", "block*"])
    with pytest.raises(ZooError, match="no layer of vit is selected"):
        select_for(models, ["stage*"])


def test_layers_know_their_pixel_grid_and_mask2former_defaults_have_one():
    assert LayerInfo("a", "m", "encoder", "NCHW", 4).has_grid
    assert LayerInfo("b", "m", "encoder", "NLC", 4, stride=16, prefix_tokens=1).has_grid
    assert not LayerInfo("c", "m", "pixel_decoder", "NLC", 4).has_grid  # multi-scale tokens
    spec = host.get_registry().model("mask2former", prefer_trained=False)
    layers = {i.name: i for i in spec.layers()}
    chosen = select_for({spec.id: list(layers)}, None,
                        keep=lambda _, n: layers[n].has_grid)[spec.id]
    assert chosen and all(layers[n].has_grid for n in chosen)
    assert any(not i.has_grid and i.layout == "NLC" for i in layers.values())


def test_a_misspelled_hook_is_a_failed_plugin(monkeypatch):
    plugin = types.ModuleType("zoo_test_misspelled")

    @zoo.hookimpl
    def register_model(register):  # the hook is register_models
        raise AssertionError("never called")

    plugin.register_model = register_model
    monkeypatch.setitem(sys.modules, "zoo_test_misspelled", plugin)
    monkeypatch.setitem(host.BUILTIN_PLUGINS, "misspelled", "zoo_test_misspelled")
    registry = host.Registry()
    info = next(p for p in registry.plugins if p.name == "misspelled")
    assert "register_model" in info.error and "register_models" in info.error
    assert "toy/cnn" in registry.models  # the others still load
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(ZooError, match="misspelled"):
        host.Registry()


def test_the_core_never_imports_the_cli():
    code = ("import sys, zoo.metrics; zoo.metrics.get('cka'); zoo.list_models();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click')"
            " or m.startswith('zoo.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def saved(sets, tmp_path_factory):
    a, b, _ = sets
    root = tmp_path_factory.mktemp("results")
    c = zoo.compare(a, b, ["cka", "rsa"], permutations=5)
    m = zoo.matrix(["toy/cnn", "toy/vit"], "samples", random_init=True, cache=False,
                   run=root / "run")
    return {"features": (a, a.save(root / "features")), "comparison": (c, c.save(root / "c")),
            "matrix": (m, m.save(root / "m"))}


@pytest.mark.parametrize("kind", ["features", "comparison", "matrix"])
def test_every_result_reads_back_with_an_equal_table(saved, kind):
    original, folder = saved[kind]
    back = zoo.open(folder)
    assert type(back) is type(original)
    pd.testing.assert_frame_equal(back.table(), original.table())
    assert back.to_dict().keys() == original.to_dict().keys()


@pytest.mark.parametrize("kind", ["features", "comparison", "matrix"])
def test_every_result_has_a_short_repr_and_an_html_view(saved, kind):
    original, _ = saved[kind]
    text = repr(original)
    assert text.startswith(f"<{type(original).__name__} ") and len(text.splitlines()) < 20
    assert "<table" in original._repr_html_()


def test_best_matches_is_a_dataframe(saved):
    c, _ = saved["comparison"]
    best = c.best_matches("cka")
    assert isinstance(best, pd.DataFrame) and list(best["layer_a"]) == c.a.names
    assert np.isfinite(best["value"]).all()


def test_open_refuses_a_folder_without_a_result(tmp_path):
    with pytest.raises(ZooError, match="no saved zoo result"):
        zoo.open(tmp_path)
