"""The notebook API: the README's Python walk-through and examples/notebook.py run verbatim,
`import zoo` leaves matplotlib's backend alone, and the API's own contracts hold."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO


def readme_python() -> str:
    """The first ```python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_walk_through_runs_verbatim_without_private_imports(tmp_path, monkeypatch):
    code = readme_python()
    assert not re.search(r"\b_\w+|from zoo\.\w+ import|import zoo\.", code), \
        "the walk-through must use the public API only"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert {"model_a", "layer_a", "role_a", "depth_a", "metric", "value", "reason", "p_value",
            "p_adjusted"} <= set(table.columns)
    assert len(table) == 3 * 3 * 5  # three metrics, 3 stage layers x 5 ViT layers
    for folder in ("api-compare", "api-matrix", "api-cut", "api-dissect"):
        assert (tmp_path / "runs" / folder / "report.html").exists() or \
            (tmp_path / "runs" / folder / "dissect.json").exists(), folder
    from matplotlib.figure import Figure

    assert isinstance(namespace["fig"], Figure)


def test_the_notebook_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "examples" / "notebook.py"),
                             str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compare" / "report.html").exists()
    assert (tmp_path / "cut" / "cut.json").exists()


def test_import_zoo_and_plotting_leave_the_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import zoo, zoo.report.figures, "
            "zoo.comparisons.comparison;"
            "import numpy as np; from zoo.report.figures import heatmap_figure;"
            "heatmap_figure(np.eye(2), 'ab', 'ab', 'xx', 'xx', 't', 'r', 'c');"
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "svg"


def test_wrap_reads_layouts_and_widths_and_extracts_like_hooks():
    import torch

    import zoo

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(2),
                              torch.nn.Identity())
    model = zoo.wrap(net, {"conv": "0", "tokens": "1"})
    conv, tokens = model.layer("conv"), model.layer("tokens")
    assert (conv.layout, conv.channels) == ("NCHW", 4)
    assert tokens.layout == "NLC" and conv.depth < tokens.depth
    x = torch.randn(2, 3, 8, 8)
    feats = model.forward_layers(x, ["conv"])
    with torch.no_grad():
        expected = net[0](x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(feats["conv"].numpy(), expected)
    with pytest.raises(zoo.ZooError, match="nope"):
        zoo.wrap(net, {"x": "nope"})


def test_compare_pairs_feature_sets_by_sample_id_and_refuses_mixed_arguments():
    import zoo

    data = zoo.dataset("synthetic:6")
    a = zoo.extract(zoo.load("toy/cnn", random_init=True), data, "stage1", cache=False)
    reversed_ids = zoo.extract(zoo.load("toy/cnn", random_init=True),
                               data.subset(range(5, -1, -1)), "stage1", cache=False)
    assert reversed_ids.sample_ids == a.sample_ids[::-1]
    same = zoo.compare(a, reversed_ids, "cka")
    assert same.results["cka"].values[0, 0] == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(zoo.ZooError, match="two feature sets"):
        zoo.compare(a, "toy/vit")


def test_the_random_init_label_is_on_every_figure_title_and_table():
    import zoo
    from zoo.report.figures import heatmap_figure  # noqa: F401  (figures are built, never shown)

    data = zoo.dataset("synthetic:6")
    a = zoo.extract(zoo.load("toy/cnn", random_init=True), data, "stage*", cache=False)
    b = zoo.extract(zoo.load("toy/vit", random_init=True), data, "block*", cache=False)
    c = zoo.compare(a, b, "cka")
    assert "[random init]" in c.heatmap("cka").axes[0].get_title()
    m = zoo.matrix(["toy/cnn", "toy/vit"], data, "cka", random_init=True, cache=False)
    assert "[random init]" in m.heatmap().axes[0].get_title()
    assert m.note == " [random init]"


def test_intervals_only_where_coverage_is_tested_and_the_others_say_why():
    import zoo

    data = zoo.dataset("synthetic:24")
    a = zoo.extract(zoo.load("toy/cnn", random_init=True), data, "stage*", cache=False)
    b = zoo.extract(zoo.load("toy/vit", random_init=True), data, "block*", cache=False)
    c = zoo.compare(a, b, "cka-debiased,svcca", intervals=True)
    table = c.table()
    debiased = table[table.metric == "cka-debiased"]
    assert debiased.ci_low.notna().all()
    assert (debiased.ci_low < debiased.ci_high).all()
    assert "ci_low" not in c.results["svcca"].stats
    assert any("no confidence interval for svcca" in n for n in c.results["svcca"].notes)


def test_p_values_are_adjusted_by_benjamini_hochberg_with_a_known_answer():
    from zoo.engine.results import adjust_pvalues

    p = np.array([[0.01, 0.04], [0.03, np.nan], [0.005, 0.5]])
    # sorted 0.005, 0.01, 0.03, 0.04, 0.5 (m = 5): p * m / rank = .025, .025, .05, .05, .5
    expected = np.array([[0.025, 0.05], [0.05, np.nan], [0.025, 0.5]])
    np.testing.assert_allclose(adjust_pvalues(p), expected, rtol=1e-12)
