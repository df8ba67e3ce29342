"""`zoo cache ls|rm|prune`: inspect and clear the feature cache (ZOO_CACHE_DIR)."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import typer

from zoo.cli.common import JsonOpt, print_json, print_table

cache_app = typer.Typer(help="Inspect or clear the feature cache (root: $ZOO_CACHE_DIR or "
                        "~/.cache/zoo).", no_args_is_help=True)

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """'2G', '500MB', '1.5g', '123' (bytes) -> bytes."""
    from zoo.errors import ZooError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", text.lower())
    if not m:
        raise ZooError(f"--max-size {text!r}: write a size such as 500M or 2G")
    return int(float(m[1]) * _UNITS[m[2]])


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '90s', '2w' -> seconds."""
    from zoo.errors import ZooError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not m:
        raise ZooError(f"--older-than {text!r}: write an age such as 30m, 12h, 7d or 2w")
    return float(m[1]) * _SECONDS[m[2]]


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def _ago(epoch: float) -> str:
    if not epoch:
        return "-"
    dt = max(0.0, time.time() - epoch)
    for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
        if dt >= secs:
            return f"{dt / secs:.0f}{unit} ago"
    return "just now"


@cache_app.command("ls")
def ls_cmd(json_: JsonOpt = False) -> None:
    """List cache entries (by model, layer, reduction) with sizes, last use and a total;
    unfinished entries (interrupted extractions) are listed too."""
    from zoo.features.cache import FeatureCache

    cache = FeatureCache()
    entries, unfinished = cache.entries(), cache.unfinished()
    total = sum(e["bytes"] for e in entries + unfinished)
    if json_:
        print_json({"root": str(cache.root), "entries": entries, "unfinished": unfinished,
                    "bytes": total})
        return
    rows: list[list[Any]] = [
        [e["fields"].get("model", "?"), e["fields"].get("layer", "?"),
         e["fields"].get("reduction", "?"), e["fields"].get("dataset", "?"),
         f"damaged (no {', '.join(e['damaged'])})" if e["damaged"] else e["shape"], e["dtype"],
         _mb(e["bytes"]), _ago(e["used"])] for e in entries]
    rows += [[u["fields"].get("model", "?"), u["fields"].get("layer", "?"),
              u["fields"].get("reduction", "?"), u["fields"].get("dataset", "?"),
              f"unfinished ({u['parts']} parts)", u["fields"].get("dtype", "?"),
              _mb(u["bytes"]), _ago(u["used"])] for u in unfinished]
    print_table(f"{len(entries)} entries, {len(unfinished)} unfinished in {cache.root}",
                ["model", "layer", "reduction", "dataset", "shape", "dtype", "MB", "used"], rows)
    print(f"total: {_mb(total)} MB")


@cache_app.command("rm")
def rm_cmd(model: Annotated[str | None, typer.Option("--model", "-m", help="only entries of "
                                                     "models whose id starts with this")] = None,
           all_: Annotated[bool, typer.Option("--all", help="remove every entry")] = False) -> None:
    """Remove cache entries, unfinished ones included (--model M, or --all)."""
    from zoo.errors import ZooError
    from zoo.features.cache import FeatureCache

    if not model and not all_:
        raise ZooError("say what to remove: --model MODEL or --all")
    n = FeatureCache().remove(model)
    print(f"removed {n} entries")


@cache_app.command("prune")
def prune_cmd(older_than: Annotated[str | None, typer.Option(
                  "--older-than", help="remove entries not used for this long (30m, 12h, 7d)")]
              = None,
              max_size: Annotated[str | None, typer.Option(
                  "--max-size", help="then remove the least recently used entries until the "
                  "cache holds at most this much (500M, 2G)")] = None,
              json_: JsonOpt = False) -> None:
    """Remove stale entries: unused for --older-than, or least recently used beyond --max-size."""
    from zoo.errors import ZooError
    from zoo.features.cache import FeatureCache

    if older_than is None and max_size is None:
        raise ZooError("say what to prune: --older-than AGE and/or --max-size SIZE")
    age = parse_age(older_than) if older_than is not None else None
    size = parse_size(max_size) if max_size is not None else None
    removed, freed = FeatureCache().prune(age, size)
    if json_:
        print_json({"removed": removed, "bytes": freed})
        return
    print(f"removed {removed} entries ({_mb(freed)} MB)")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
