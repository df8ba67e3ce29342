"""The default layers of dissect and cut work for every registered family (tiny random-init
builds): only layers with a pixel grid are chosen, so no family ends in "tokens do not form a
square grid" (Mask2Former's multi-scale pixel-decoder tokens once did)."""

from __future__ import annotations

import pytest

import zoo
from tests.test_families import FAMILIES, tiny_model
from zoo.align.pipeline import cut
from zoo.concepts.pipeline import dissect_model
from zoo.errors import ZooError

# Mask2Former (multi-scale tokens beside its maps) and the toy family run in every suite; the
# other families' tiny builds take longer and run with -m slow.
QUICK = ("mask2former", "toy")
BY_SPEED = [f if f in QUICK else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]


def refuses_without_a_grid(model) -> bool:
    """A family with no layer on a pixel grid (pixels/stats: histograms and moments) has no
    default layers for dissect or cut: the refusal names it (checked by the caller)."""
    return not any(info.has_grid for info in model.layers.values())


@pytest.mark.parametrize("family", BY_SPEED)
def test_dissect_runs_on_the_default_layers(family: str):
    model = tiny_model(family)
    grid = [n for n, info in model.layers.items() if info.has_grid]
    if refuses_without_a_grid(model):
        with pytest.raises(ZooError, match=f"no spatial layer of {model.id}"):
            dissect_model(model, "synthetic:6", cache=False)
        return
    run = dissect_model(model, "synthetic:6", cache=False)
    assert list(run.layers) == grid and grid
    assert all(d.units == model.layers[n].channels for n, d in run.layers.items())


@pytest.mark.parametrize("family", BY_SPEED)
def test_cut_runs_on_the_default_layers_with_a_second_model(family: str):
    model = tiny_model(family)
    other = zoo.load("toy/vit" if model.id != "toy/vit" else "toy/cnn", random_init=True)
    if refuses_without_a_grid(model):
        with pytest.raises(ZooError, match=f"no spatial layer of {model.id}"):
            cut([model, other], "synthetic:4", n_eig=4, landmarks=64, cache=False)
        return
    run = cut([model, other], "synthetic:4", n_eig=4, landmarks=64, cache=False)
    keys = {(row["model"], row["layer"]) for row in run.blocks.info}
    assert {(model.id, n) for n, i in model.layers.items() if i.has_grid} <= keys
    assert len(run.table()) == len(keys)


def test_cut_refuses_a_model_given_twice():
    model = tiny_model("toy")
    with pytest.raises(ZooError, match="given twice"):
        cut([model, model], "synthetic:4", n_eig=4, landmarks=64, cache=False)
