"""Errors speak the caller's language: raised through the Python API they name Python
arguments (`random_init=True`), on the command line CLI options (`--random-init`); the weights
error names every model without weights and the three ways forward."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import REPO, assert_user_error, run_zoo
from zoo.errors import ZooError

CLI_OPTION = re.compile(r"(?<![\w-])--[a-z]")


def _outside_backticks(text: str) -> str:
    return " ".join(part for k, part in enumerate(text.split("`")) if not k % 2)


def _message_strings() -> list[tuple[str, str]]:
    """Every string constant (f-string parts included) of the library that names a CLI option:
    the catalogue of messages an error can carry (the CLI package itself left out)."""
    out = []
    for folder in ("zoo", "plugins", "align", "concepts", "metrics"):
        for path in (REPO / folder).rglob("*.py"):
            if "cli" in path.relative_to(REPO).parts[:1] or path.parent.name == "cli":
                continue
            tree = ast.parse(path.read_text())
            docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                          if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                          and n.body and isinstance(n.body[0], ast.Expr)}
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and id(node) not in docstrings and CLI_OPTION.search(node.value)):
                    out.append((f"{path.relative_to(REPO)}:{node.lineno}", node.value))
    return out


def test_the_catalogue_is_not_empty():
    assert len(_message_strings()) > 30


@pytest.mark.parametrize("where, text", _message_strings())
def test_every_cli_option_in_a_message_has_python_wording(where, text):
    wording = str(ZooError(text))
    assert not CLI_OPTION.search(_outside_backticks(wording)), (where, wording)


def test_the_cli_keeps_cli_wording():
    from zoo.errors import cli_wording

    with cli_wording():
        assert "--random-init" in str(ZooError("pass --random-init"))
    assert str(ZooError("pass --random-init")) == "pass random_init=True"


@pytest.mark.parametrize("call", [
    lambda zoo: zoo.load("unetpp"),
    lambda zoo: zoo.load("toy/cnn", size=0),
    lambda zoo: zoo.extract("toy/cnn", "no/such/folder"),
    lambda zoo: zoo.extract("toy/cnn", "synthetic:2", dtype="float8"),
    lambda zoo: zoo.extract("toy/cnn", "synthetic:2", reduction="grid:0"),
    lambda zoo: zoo.dataset("isic"),
    lambda zoo: zoo.dataset("folder"),
])
def test_errors_raised_through_the_api_speak_python(call, tmp_path, monkeypatch):
    import zoo

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ZooError) as info:
        call(zoo)
    assert not CLI_OPTION.search(_outside_backticks(str(info.value))), str(info.value)


def test_the_weights_error_in_python_names_random_init_and_make_demo(tmp_path, monkeypatch):
    import zoo

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ZooError) as info:
        zoo.load("mask2former")
    text = str(info.value)
    for needle in ("random_init=True", "weights=PATH", "`make demo`", "`zoo train"):
        assert needle in text, text


def test_the_weights_error_on_the_cli_names_both_models_and_three_ways(tmp_path):
    result = run_zoo("compare", "unetpp", "mask2former",
                     env={"HF_HOME": str(tmp_path), "TORCH_HOME": str(tmp_path)})
    assert_user_error(result, "unetpp/resnet34", "mask2former/", "`make demo`", "`zoo train",
                      "--random-init", "--weights MODEL=PATH")
