"""The built-in command groups, registered like any plugin's commands."""

from __future__ import annotations

import importlib

import typer

from zoo.hookspecs import hookimpl

# One module per command group; each defines `register(app)`.
GROUPS = ("zoo.cli.listing", "zoo.cli.extract", "zoo.cli.cache", "zoo.cli.compare",
          "zoo.cli.matrix", "zoo.cli.train", "zoo.cli.demo", "zoo.cli.cut", "zoo.cli.align",
          "zoo.cli.dissect", "zoo.cli.validate")


@hookimpl
def register_commands(app: typer.Typer) -> None:
    for module in GROUPS:
        importlib.import_module(module).register(app)
