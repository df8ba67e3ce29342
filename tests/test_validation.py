"""`zoo validate`: the four checks on constructed similarity matrices (known answers), and the
suite end to end on a tiny setting."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from tests.test_plugins import _fake_distribution
from zoo.registry.host import reset_registry
from zoo.study.validation import (
    group_separation,
    layer_identification,
    monotonicity_violations,
    output_correlation,
    representation_metrics,
    validate,
)
from zoo.study.validation_nets import NetConfig, grating_images, with_shortcut


def test_layer_identification_counts_same_depth_best_matches():
    depth, seeds = 3, 2
    alike = np.zeros((6, 6))
    alike[np.arange(6), (np.arange(6) + 3) % 6] = 1.0  # each layer's best match: same depth
    assert layer_identification(alike, seeds, depth) == 1.0
    alike[0, 3], alike[0, 4] = 0.5, 0.9  # seed 0 layer 0 now matches seed 1 layer 1
    assert layer_identification(alike, seeds, depth) == pytest.approx(5 / 6)
    alike[1, 3:] = np.nan  # an undefined row is a miss
    assert layer_identification(alike, seeds, depth) == pytest.approx(4 / 6)


def test_monotonicity_counts_nearer_layers_less_alike():
    depth = 4
    good = -np.abs(np.subtract.outer(np.arange(depth), np.arange(depth))).astype(float)
    assert monotonicity_violations(good, 1, depth) == 0.0
    bad = good.copy()
    bad[0, 3] = 5.0  # layer 3 most alike to layer 0: beats layers 1 and 2
    # triples (anchor, nearer, farther) on one side: 0:(1,2),(1,3),(2,3); 1:(2,3); 2:(1,0);
    # 3:(2,1),(2,0),(1,0) -> 8, of which (0;1,3) and (0;2,3) are violated
    assert monotonicity_violations(bad, 1, depth) == pytest.approx(2 / 8)


def test_group_separation_and_output_correlation():
    designs = ["normal"] * 3 + ["random-labels"] * 2 + ["shortcut"] * 2 + ["noise"] * 2
    same = np.equal.outer(designs, designs).astype(float)
    result = group_separation(same, designs)
    assert result == {"random-labels": 1.0, "shortcut": 1.0, "noise": 1.0}
    assert group_separation(-same, designs)["noise"] < 0.5  # anti-correlated: low AUPRC
    disagreement = 1.0 - same
    assert output_correlation(same, disagreement) == pytest.approx(1.0)
    assert output_correlation(-same, disagreement) == pytest.approx(-1.0)


def test_generated_data_and_shortcut():
    images, labels = grating_images(40, 16, seed=0)
    again, _ = grating_images(40, 16, seed=0)
    np.testing.assert_array_equal(images, again)
    assert images.shape == (40, 3, 16, 16) and set(labels) <= set(range(10))
    dotted = with_shortcut(images, labels)
    same_class = labels == labels[0]
    np.testing.assert_array_equal(dotted[same_class, :, :3, :3],
                                  np.broadcast_to(dotted[0, :, :3, :3],
                                                  dotted[same_class, :, :3, :3].shape))


@pytest.mark.slow
def test_validate_end_to_end_on_a_tiny_setting():
    tiny = NetConfig(size=8, width=6, depth=3, train=96, eval=40, epochs=1, batch=32)
    result = validate("cka,rank-similarity", seeds=2, config=tiny)
    table = result.table()
    assert table["metric"].tolist() == ["cka", "rank-similarity"]
    assert table["layer_identification"].between(0, 1).all()
    assert {"auprc_random-labels", "auprc_shortcut", "auprc_noise", "rho_output",
            "monotonicity_violations"} <= set(table.columns)
    assert [n.design for n in result.networks] == ["normal"] * 2 + [
        d for d in ("random-labels", "shortcut", "noise") for _ in range(2)]
    again = validate("cka", seeds=2, config=tiny)
    assert again.rows[0] == result.rows[0]  # seeded: the same networks and numbers


def test_a_metric_undefined_everywhere_has_no_layer_identification():
    assert np.isnan(layer_identification(np.full((6, 6), np.nan), 2, 3))


# A third-party plugin's own linear CKA, as a distance: 1 - <Kx, Ky>_F / (|Kx|_F |Ky|_F) of the
# centred linear Gram matrices; scored by validate, it must give exactly the built-in cka's row
# (the four checks depend only on the order of the values, which agree to float64 rounding).
CKA_DISTANCE_PLUGIN = """
import numpy as np
import zoo


class OneMinusCKA:
    name, kind, symmetric = "one-minus-cka", "distance", True

    def prepare(self, X):
        X = np.asarray(X, dtype=np.float64)
        X = X - X.mean(axis=0)
        gram = X @ X.T
        return gram / np.linalg.norm(gram)

    def score(self, a, b):
        return 1.0 - float(np.sum(a * b))


@zoo.hookimpl
def register_metrics(register):
    register(OneMinusCKA())
"""


@pytest.mark.slow
def test_validate_scores_a_third_party_metric_plugin_like_a_built_in(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "zoo_cka_distance", CKA_DISTANCE_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_registry()  # discovered through its entry point, as an installed plugin would be
    assert "one-minus-cka" in [m.name for m in representation_metrics(None)]  # in the default
    tiny = NetConfig(size=8, width=6, depth=3, train=96, eval=40, epochs=1, batch=32)
    table = zoo.validate("cka,one-minus-cka", seeds=3, config=tiny).table().set_index("metric")
    assert table.loc["one-minus-cka", "kind"] == "distance"
    checks = ["layer_identification", "monotonicity_violations", "auprc_random-labels",
              "auprc_shortcut", "auprc_noise", "auprc_mean", "rho_output"]
    assert table.loc["one-minus-cka", checks].notna().all()
    assert table.loc["one-minus-cka", checks].tolist() == table.loc["cka", checks].tolist()
