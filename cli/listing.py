"""`zoo list`, `zoo info`, `zoo plugins`: what is registered, without loading any weights."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import CropPctOpt, JsonOpt, SizeOpt, print_json, print_table
from zoo.errors import UnknownNameError

KINDS = ("models", "metrics", "datasets")


def list_cmd(kind: Annotated[str, typer.Argument(help="models, metrics or datasets")] = "models",
             json_: JsonOpt = False) -> None:
    """List registered models (with their tags), metrics or datasets."""
    from zoo.registry import get_registry

    registry = get_registry()
    if kind not in KINDS:
        raise UnknownNameError("list", kind, KINDS)
    if kind == "models":
        rows = [{"id": s.id, "family": s.family, "default": s.default or
                 len(registry.families[s.family]) == 1, "input": s.input.size,
                 "weights": s.weights, "description": s.description}
                for s in registry.models.values()]
        columns = ["id", "default", "input", "weights", "description"]
    elif kind == "metrics":
        from zoo.metrics.base import describe

        rows = [describe(m) for m in registry.metrics.values()]
        if not json_:
            for r in rows:
                r["invariances"] = ", ".join(r["invariances"]) + "".join(
                    f"; with {_params(w['params'])}: {', '.join(w['invariances'])}"
                    for w in r["invariances_with"])
        columns = ["name", "kind", "symmetric", "invariances", "convention", "reference"]
    else:
        rows = [{"name": d.name, "needs_path": d.needs_path, "description": d.description}
                for d in registry.datasets.values()]
        columns = ["name", "description"]
    if json_:
        print_json(rows)
    else:
        print_table(f"{len(rows)} {kind}", columns, [[r[c] for c in columns] for r in rows])
        if kind == "metrics":
            from zoo.metrics.nulls import METHODS

            print(f"statistics (zoo compare --permutations N), for every metric: {METHODS}")


def info_cmd(model: Annotated[str, typer.Argument(help="model id or family")],
             size: SizeOpt = None, crop_pct: CropPctOpt = None, json_: JsonOpt = False) -> None:
    """Show a model's layers, its resolved input transform and where its weights would come
    from (every cache looked up, found or not), without loading weights."""
    from zoo.registry import get_registry

    spec = get_registry().model(model)
    layers = spec.layers()
    transform = spec.input.with_overrides(size, crop_pct)
    sources = [{"entry": c.describe(), "found": str(hit) if (hit := c.find()) else None}
               for c in spec.sources]
    if json_:
        print_json({"id": spec.id, "weights": spec.weights, "description": spec.description,
                    "input": transform.key(), "transform": transform.describe(),
                    "sources": sources, "layers": [i.as_dict() for i in layers]})
        return
    print(f"{spec.id}: {spec.description}\nweights: {spec.weights}\ninput: "
          f"{transform.describe()}")
    for s in sources:
        print(f"  source {s['entry']}: {s['found'] or 'not found'}")
    print_table(f"{len(layers)} layers", ["layer", "role", "layout", "channels", "stride",
                                          "depth", "module"],
                [[i.name, i.role, i.layout + (f"+{i.prefix_tokens}" if i.prefix_tokens else ""),
                  i.channels, i.stride if i.stride is not None else "-", f"{i.depth:.2f}",
                  i.module + (f" (call {i.call})" if i.call is not None else "")]
                 for i in layers])


def plugins_cmd(json_: JsonOpt = False) -> None:
    """Show loaded plugins, what each registered, and the ones that failed."""
    from zoo.registry import get_registry

    plugins = get_registry().plugins
    if json_:
        print_json([p.__dict__ for p in plugins])
        return
    print_table("plugins", ["plugin", "source", "status", "registered"],
                [[p.name, p.source, f"FAILED: {p.error}" if p.error else "ok",
                  _summary(p.registered)] for p in plugins])


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _summary(registered: list[str]) -> str:
    counts: dict[str, int] = {}
    for item in registered:
        kind = item.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in counts.items()) or "-"


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("info")(info_cmd)
    app.command("plugins")(plugins_cmd)
