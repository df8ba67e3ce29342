"""Every declared invariance of every registered metric, generated from the registry (so
third-party metrics installed as plugins are held to their declarations too)."""

from __future__ import annotations

import pytest

from zoo.metrics.builtin import BUILTIN_METRICS
from zoo.metrics.invariance import SHAPES, check_invariances, declared_invariances
from zoo.registry.host import get_registry, reset_registry

REGISTERED = sorted(get_registry().metrics)  # at collection: built-ins and installed plugins


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", REGISTERED)
def test_declared_invariances_hold(name, shape):
    """With more samples than features and with as many or fewer (n <= d), where counting a
    spurious direction after centring broke shape (0 < alpha < 1) and linreg."""
    metric = get_registry().metric(name)
    assert check_invariances(metric, shape=shape) == []


@pytest.mark.parametrize("cls", BUILTIN_METRICS, ids=lambda c: c.name)
def test_every_builtin_declares_its_invariances(cls):
    assert all(names for _, names in declared_invariances(cls()))


THIRD_PARTY = '''
import numpy as np
import zoo


class Spread:
    """Centred Frobenius norm of A over that of B: rotation and translation invariant, not
    scale invariant, although it declares so."""

    name, kind, symmetric = "spread-ratio", "similarity", False
    invariances = ("orthogonal", "translation", "isotropic-scaling")

    def prepare(self, X):
        return np.linalg.norm(X - X.mean(axis=0))

    def score(self, a, b):
        return float(a / b)


@zoo.hookimpl
def register_metrics(register):
    register(Spread())
'''


def test_a_third_party_metric_is_checked_and_a_false_declaration_caught(tmp_path,
                                                                         monkeypatch):
    (tmp_path / "zoo_spread.py").write_text(THIRD_PARTY)
    info = tmp_path / "zoo_spread-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-spread\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo]\nspread = zoo_spread\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_registry()
    failures = check_invariances(get_registry().metric("spread-ratio"))
    assert len(failures) == 2  # isotropic scaling of side A and of side B; the others hold
    assert all("declares isotropic-scaling but isotropic-scaling of side" in f for f in failures)


def test_list_metrics_shows_invariances_and_conventions():
    import json

    from tests.conftest import run_zoo

    rows = json.loads(run_zoo("list", "metrics", "--json").stdout)
    assert sorted(r["name"] for r in rows) == REGISTERED
    for row in rows:
        declared = [(w["params"], w["invariances"]) for w in row["invariances_with"]]
        assert declared == [(p, list(n)) for p, n in declared_invariances(
            get_registry().metric(row["name"]))[1:]]
        assert row["convention"] and row["reference"]
    shape = next(r for r in rows if r["name"] == "shape")
    assert shape["invariances"] == ["orthogonal", "translation"]
    assert shape["invariances_with"][0] == {"params": {"alpha": 0.0}, "invariances": [
        "orthogonal", "isotropic-scaling", "translation", "invertible-linear"]}
    table = run_zoo("list", "metrics", env={"COLUMNS": "250"}).stdout
    assert "per-sample-offset" in table and "invertible-linear" in table
