"""`zoo list`, `zoo info`, `zoo plugins`: what is registered, without loading any weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zoo.cli.common import CropPctOpt, JsonOpt, SizeOpt, WeightsSourceOpt, print_json, print_table
from zoo.cli.tables import wrap
from zoo.errors import UnknownNameError

if TYPE_CHECKING:
    from zoo.registry.specs import ModelSpec

KINDS = ("models", "metrics", "datasets")


def list_cmd(kind: Annotated[str, typer.Argument(
        help="models, metrics, datasets, or a model glob such as 'timm/*vit*' or 'hf/*'")
        ] = "models", json_: JsonOpt = False) -> None:
    """List registered models (with their tags), metrics or datasets; a glob lists matching
    models of every family, generic ones included, with whether weights are local."""
    from zoo.registry.host import get_registry

    registry = get_registry()
    if kind not in KINDS and ("*" in kind or "/" in kind or "?" in kind):
        rows = registry.search(kind)
        columns = ["id", "weights", "description"]
    elif kind not in KINDS:
        raise UnknownNameError("list", kind, KINDS, "or pass a glob such as 'timm/*vit*'")
    elif kind == "models":
        rows = [{"id": s.id, "family": s.family, "default": s.default or
                 len(registry.families[s.family]) == 1, "input": s.input.size,
                 "weights": s.weights, "description": s.description}
                for s in registry.models.values()]
        rows += [{"id": f"{f.name}/...", "family": f.name, "default": False, "input": "-",
                  "weights": "local caches", "description": f"{f.description}, e.g. "
                  f"{f.example}; list with `zoo list '{f.name}/*'`"}
                 for f in registry.model_families.values()]
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
             size: SizeOpt = None, crop_pct: CropPctOpt = None,
             weights_source: WeightsSourceOpt = None, json_: JsonOpt = False) -> None:
    """Show a model's layers, where its weights would come from (every cache looked up, found or
    not, with its format and transform) and the input transform a load runs now, without
    loading weights."""
    from zoo.model.candidates import weights_plan
    from zoo.registry.host import get_registry

    spec = get_registry().model(model)
    layers = spec.layers()
    plan = weights_plan(spec, size, crop_pct, weights_source)
    sources = [c.as_dict() for c in plan.candidates]
    chosen = plan.chosen
    transform = plan.input.describe() if plan.input else chosen.note
    if json_:
        print_json({"id": spec.id, "weights": spec.weights, "description": spec.description,
                    "loads": chosen.found if chosen else None,
                    "input": plan.input.key() if plan.input else None, "transform": transform,
                    "sources": sources, "layers": [i.as_dict() for i in layers]})
        return
    loads = (f"{chosen.found} ({chosen.entry}){f' [{chosen.format}]' if chosen.format else ''}"
             if chosen else "no cached weights found (pass --weights PATH, or --random-init, "
             "which runs the input below)")
    for line in (f"{spec.id}: {spec.description}", f"weights: {spec.weights}",
                 f"loads now: {loads}", f"input: {transform}", *resolved_note(model, spec)):
        print(wrap(line))
    for s in sources:
        fmt = f" [{s['format']}]" if s["format"] else ""
        print(wrap(f"source {s['entry']}{fmt}: {s['found'] or 'not found'}"
                   f"{' (loads now)' if s['chosen'] else ''}; input: {s['transform']}",
                   indent="  "))
    if any(s["format"] for s in sources):
        print(wrap("(a cache entry's format is the layout published under its name; a file "
                   "whose own layout says otherwise is read as that, and --weights files by "
                   "their layout and keys)", indent="  "))
    print_table(f"{len(layers)} layers", ["layer", "role", "layout", "channels", "stride",
                                          "depth", "module"],
                [[i.name, i.role, i.layout + (f"+{i.prefix_tokens}" if i.prefix_tokens else ""),
                  i.channels, i.stride if i.stride is not None else "-", f"{i.depth:.2f}",
                  i.module + (f" (call {i.call})" if i.call is not None else "")]
                 for i in layers])


def resolved_note(name: str, spec: ModelSpec) -> list[str]:
    """Say so when `name` resolves to a trained checkpoint rather than the family's own
    default (after `make demo`, `mask2former` is the demo's small model, with fewer layers)."""
    from zoo.registry.host import get_registry

    own = get_registry().model(name, prefer_trained=False)
    if own.id == spec.id:
        return []
    return [(f"note: {name} resolves to the trained checkpoint {spec.id} ({len(spec.layers())} "
             f"layers); the family's own default is {own.id} ({len(own.layers())} layers): "
             f"`zoo info {own.id}`")]


def plugins_cmd(json_: JsonOpt = False) -> None:
    """Show loaded plugins, what each registered, and the ones that failed."""
    from zoo.registry.host import get_registry

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
