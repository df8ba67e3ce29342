"""The option parser: a repeated or empty `--weights MODEL=PATH` item is an error naming it,
never silently dropped; API arguments of the wrong type are one clear ZooError."""

from __future__ import annotations

import pytest

from tests.conftest import assert_user_error, run_zoo
from zoo.errors import ZooError


@pytest.mark.parametrize("items, needle", [
    (["toy/cnn=a.pt", "toy/cnn=b.pt"], "given twice"),
    (["toy/cnn="], "empty path"),
    (["=a.pt"], "names no model"),
    ([""], "empty"),
])
def test_bad_weights_items_are_errors(items, needle):
    from zoo.cli.common import model_weights

    with pytest.raises(ZooError, match=needle):
        model_weights(items, ["toy/cnn", "toy/vit"])


def test_the_same_pair_given_twice_is_still_fine():
    from zoo.cli.common import model_weights

    assert model_weights(["toy/cnn=a.pt", "toy/cnn=a.pt"], ["toy/cnn"]) == {"toy/cnn": "a.pt"}


def test_repeated_weights_on_the_command_line_is_one_line(tmp_path):
    result = run_zoo("compare", "toy/cnn", "toy/cnn", "--weights", "toy/cnn=a.pt",
                     "--weights", "toy/cnn=b.pt", "--data", "synthetic:2")
    assert_user_error(result, "--weights", "given twice")


@pytest.fixture
def toy():
    import zoo

    return zoo.load("toy/cnn")


@pytest.mark.parametrize("call, needle", [
    (lambda zoo, toy: zoo.extract(None, "synthetic:2"), "model"),
    (lambda zoo, toy: zoo.extract(toy, None), "data"),
    (lambda zoo, toy: zoo.extract(toy, 3), "data"),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", cache="/tmp/somewhere"), "cache="),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", batch_size=2.5), "batch"),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", batch_size=True), "batch"),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", "stage1", "grid:99999999999"), "grid"),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", "stage1", "grid:17"), "16 x 16"),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", "stage1", None), "reduction"),
    (lambda zoo, toy: zoo.extract(toy, "synthetic:2", 5), "layers"),
    (lambda zoo, toy: zoo.load(None), "model"),
    (lambda zoo, toy: zoo.dataset(None), "data"),
])
def test_api_arguments_of_the_wrong_type_are_one_zoo_error(toy, call, needle):
    import zoo

    with pytest.raises(ZooError, match=needle):
        call(zoo, toy)


def test_a_wrapped_layer_returning_a_dict_is_a_zoo_error():
    import torch
    from torch import nn

    import zoo

    class Dicty(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return {"out": self.conv(x)}

    net = nn.Sequential()
    net.add_module("body", Dicty())
    with pytest.raises(ZooError, match="dict"):
        zoo.wrap(net, ["body"])
    assert torch.is_tensor(net.body.conv(torch.zeros(1, 3, 4, 4)))


def test_the_matrix_of_a_wrapped_model_is_one_zoo_error():
    import torch

    import zoo

    mine = zoo.wrap(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1)), ["0"])
    with pytest.raises(ZooError, match="model ids"):
        zoo.matrix([mine, "toy/cnn"], "synthetic:2")
