"""Reference bands (zoo.comparisons.baselines): a twin's values are exactly A compared with the
twin, the twin is what was asked for (random weights, another seed), and impossible twins are
refused before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import assert_user_error, run_zoo
from zoo.comparisons.baselines import add_baseline, make_twin
from zoo.comparisons.comparison import compare


def test_impossible_twins_are_refused():
    toy = zoo.load("toy/cnn")  # random-init from its own fixed seed
    with pytest.raises(zoo.ZooError, match="no random-init twin other than itself; compare it"):
        make_twin(toy, "random-init")
    with pytest.raises(zoo.ZooError, match="no seed twin other than itself; pass"):
        make_twin(toy, "seed")
    with pytest.raises(zoo.ZooError, match="baseline_weights=PATH"):
        make_twin(zoo.load("pixels"), "seed")  # not random-init: needs the other checkpoint
    with pytest.raises(zoo.ZooError, match="unknown baseline 'noise'"):
        make_twin(toy, "noise")


def test_seed_twin_band_equals_a_against_the_twin(tmp_path):
    data = zoo.dataset("samples")
    model_b = zoo.load("resnet-ssl", random_init=True, tiny=True, size=64)
    twin = make_twin(model_b, "seed", tiny=True)
    assert twin.fingerprint != model_b.fingerprint and twin.input == model_b.input  # size kept
    assert not torch.equal(next(iter(twin.module.parameters())),
                           next(iter(model_b.module.parameters())))
    a = zoo.extract("toy/cnn", data, cache=False)
    b = zoo.extract(model_b, data, layers="layer*", cache=False)
    c = compare(a, b, "cka,rank-similarity")
    add_baseline(c, twin, "seed", data)
    expected = compare(a, zoo.extract(twin, data, layers=b.names, cache=False),
                       "cka,rank-similarity")
    for name in ("cka", "rank-similarity"):
        np.testing.assert_array_equal(c.result(name).stats["twin_seed"],
                                      expected.result(name).values)
        assert any(n.startswith("Reference band (seed twin") for n in c.result(name).notes)
    assert "twin_seed" in c.table().columns
    c.save(tmp_path / "run")
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Reference band: seed twin" in report and "data:image/png;base64," in report


def test_a_random_init_models_random_init_twin_is_another_random_init():
    model_b = zoo.load("resnet-ssl", random_init=True, tiny=True, size=64)
    twin = make_twin(model_b, "random-init", tiny=True)
    seed_twin = make_twin(model_b, "seed", tiny=True)
    assert twin.random_init and twin.fingerprint != model_b.fingerprint
    assert twin.fingerprint == seed_twin.fingerprint  # both: the init seed TWIN_SEED
    differs = [not torch.equal(p, q) for p, q in zip(twin.module.parameters(),
                                                     model_b.module.parameters())]
    assert any(differs)
    data = zoo.dataset("samples")
    a = zoo.extract("toy/cnn", data, cache=False)
    c = compare(a, zoo.extract(model_b, data, layers="layer1", cache=False), "cka")
    add_baseline(c, twin, "random-init", data)
    assert any("B is itself random-init, so the twin is another random init" in n
               for n in c.result("cka").notes)


@pytest.mark.slow
def test_compare_with_a_random_init_band_cli(tmp_path):
    trained = tmp_path / "toy.pt"
    state = zoo.load("toy/cnn").module.state_dict()
    torch.save({k: v + 0.1 if v.is_floating_point() else v for k, v in state.items()}, trained)
    out = tmp_path / "cmp"
    r = run_zoo("compare", "pixels", "toy/cnn", "--weights", f"toy/cnn={trained}", "--data",
                "samples", "-m", "cka", "--images", "0", "--no-cache", "--baseline",
                "random-init", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "Reference band (random-init twin of toy/cnn" in r.stdout
    assert "twin_random_init" in (out / "results.csv").read_text().splitlines()[0]
    refused = run_zoo("compare", "pixels", "toy/cnn", "--random-init", "--baseline",
                      "random-init", "-o", str(tmp_path / "no"))
    assert_user_error(refused, "toy/cnn does not take zoo's init seed", "no random-init twin")
    assert not (tmp_path / "no").exists()
