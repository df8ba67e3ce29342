"""`zoo matrix`: the all-pairs (model, layer) matrix across several models, with model blocks
and per-model smoothness profiles along depth."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from zoo.cli.common import (BatchOpt, DataOpt, DeviceOpt, JsonOpt, LayersOpt, NoCacheOpt,
                            RandomInitOpt, ReduceOpt, SkipBadOpt, load_data, load_model,
                            out_dir, print_json, print_table, progress_bar, split_list)
from zoo.errors import ZooError


def matrix_cmd(models: Annotated[list[str] | None, typer.Argument(help="model ids or "
                                                                  "families")] = None,
               all_: Annotated[bool, typer.Option("--all", help="every registered family "
                                                  "(its default model)")] = False,
               data: DataOpt = "samples", layers: LayersOpt = None,
               metric: Annotated[str, typer.Option("--metric", "-m", help="metric name")] = "cka",
               reduce: ReduceOpt = "gap", random_init: RandomInitOpt = False,
               device: DeviceOpt = "cpu", batch_size: BatchOpt = 16,
               out: Annotated[str, typer.Option("--out", "-o", help="output folder")]
               = "runs/matrix", skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
               json_: JsonOpt = False) -> None:
    """All-pairs layer matrix across models (layer globs in --layers apply to every model)."""
    from zoo.cache import FeatureCache
    from zoo.compare import side_features, zoo_matrix
    from zoo.extract import layer_matches
    from zoo.features import parse_reduction
    from zoo.io import write_csv, write_json
    from zoo.metrics.smoothness import smoothness
    from zoo.registry import get_registry
    from zoo.report import heatmap_png, html_report, html_table, img_tag, profile_png

    parse_reduction(reduce)
    registry = get_registry()
    names = list(registry.families) if all_ else list(models or [])
    if len(names) < 1:
        raise ZooError("name at least one model, or pass --all")
    chosen = registry.metric(metric)
    dataset = load_data(data, skip_bad)
    cache = None if no_cache else FeatureCache()
    folder = out_dir(out)
    sides, ids = [], []
    with progress_bar() as progress:
        for name in names:
            model = load_model(name, random_init=random_init, device=device)
            # --layers applies to every model: each uses the patterns that match its layers
            wanted = [p for p in split_list(layers) or [] if layer_matches(list(model.layers), p)]
            if layers and not wanted:
                raise ZooError(f"no layer of {model.id} matches --layers {','.join(layers)}; "
                               f"see `zoo info {model.id}`")
            side, side_ids = side_features(model, dataset, wanted or None, reduce, batch_size, cache,
                                           progress)
            sides.append(side)
            ids.append(side_ids)
        result = zoo_matrix(sides, ids, chosen, device, progress)
    labels = [f"{m}:{l}" for m, l in result.labels]
    roles = [i.role for s in sides for i in s.layers]
    blocks = [s.model for s in sides for _ in s.layers]
    rows = [{"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1],
             "metric": metric, "value": float(result.values[i, j]), "n": result.n,
             "reduction": reduce, "reason": result.reasons[i, j]}
            for i, a in enumerate(result.labels) for j, b in enumerate(result.labels)]
    write_csv(folder / "matrix.csv", rows)
    note = " [random init]" if random_init else ""
    heatmap_png(folder / "matrix.png", result.values, labels, labels, blocks, blocks,
                f"{metric} across {len(sides)} models{note} (n={result.n}, {reduce})",
                "model:layer", "model:layer")
    profiles = {}
    for side in sides:  # zoo.metrics.smoothness: 1 - similarity (or the distance) per step
        steps = smoothness(side.reps, chosen).values if len(side.reps) > 1 else np.array([])
        depth = np.array([(a.depth + b.depth) / 2 for a, b in zip(side.layers, side.layers[1:])])
        profiles[side.model] = (depth, steps)
    profile_png(folder / "smoothness.png", profiles,
                f"change between consecutive layers{note}",
                f"1 - {metric}" if chosen.kind == "similarity" else metric)
    summary = {"models": [s.model for s in sides], "random_init": random_init,
               "metric": metric, "data": dataset.name, "n": result.n, "reduction": reduce,
               "labels": labels, "roles": roles, "values": result.values,
               "smoothness": {m: {"depth": d, "value": v} for m, (d, v) in profiles.items()}}
    write_json(folder / "matrix.json", summary)
    html_report(folder / "report.html", f"zoo matrix: {metric} across the zoo{note}", [
        ("Setup", html_table([{"models": ", ".join(summary["models"]), "data": dataset.name,
                               "samples": result.n, "reduction": reduce,
                               "layers": len(labels)}])),
        ("Matrix", img_tag("matrix.png", "matrix")),
        ("Smoothness along depth", "<p>Each point: how much the representation changes from a "
         "layer to the next of the same model (1 - similarity, or the distance), at their mean "
         "relative depth; low and flat means smooth processing.</p>"
         + img_tag("smoothness.png", "smoothness"))])
    if json_:
        print_json({k: v for k, v in summary.items() if k != "values"} | {"out": str(folder)})
        return
    print_table(f"change between consecutive layers (1 - {metric} or distance)",
                ["model", "steps", "mean", "max"],
                [[m, len(v), float(np.nanmean(v)) if len(v) else float("nan"),
                  float(np.nanmax(v)) if len(v) else float("nan")]
                 for m, (_, v) in profiles.items()])
    print(f"report: {folder / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("matrix")(matrix_cmd)
