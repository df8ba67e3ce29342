"""`zoo cache ls` / `zoo cache rm`: inspect and clear the feature cache (ZOO_CACHE_DIR)."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import JsonOpt, print_json, print_table

cache_app = typer.Typer(help="Inspect or clear the feature cache (root: $ZOO_CACHE_DIR or "
                        "~/.cache/zoo).", no_args_is_help=True)


@cache_app.command("ls")
def ls_cmd(json_: JsonOpt = False) -> None:
    """List complete cache entries."""
    from zoo.cache import FeatureCache

    cache = FeatureCache()
    entries = cache.entries()
    if json_:
        print_json(entries)
        return
    print_table(f"{len(entries)} entries in {cache.root}",
                ["model", "layer", "reduction", "dataset", "shape", "MB"],
                [[e["fields"]["model"], e["fields"]["layer"], e["fields"]["reduction"],
                  e["fields"]["dataset"], e["shape"], f"{e['bytes'] / 1e6:.2f}"] for e in entries])


@cache_app.command("rm")
def rm_cmd(model: Annotated[str | None, typer.Option("--model", "-m", help="only entries of "
                                                     "models whose id starts with this")] = None,
           all_: Annotated[bool, typer.Option("--all", help="remove every entry")] = False) -> None:
    """Remove cache entries (--model M, or --all)."""
    from zoo.cache import FeatureCache
    from zoo.errors import ZooError

    if not model and not all_:
        raise ZooError("say what to remove: --model MODEL or --all")
    n = FeatureCache().remove(model)
    print(f"removed {n} entries")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
