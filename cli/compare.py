"""`zoo compare A B` (layer x layer matrices of two models) and `zoo matrix` (all pairs across
the zoo): tables on stdout; CSV, JSON, heatmaps and an HTML report in --out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from zoo.cli.common import (BatchOpt, DataOpt, DeviceOpt, JsonOpt, NoCacheOpt,
                            RandomInitOpt, ReduceOpt, SkipBadOpt, load_data, load_model,
                            out_dir, print_json, print_table, progress_bar, slug,
                            split_list)

DEFAULT_METRICS = "cka,cka-debiased,cka-rbf,svcca,rsa"
MetricsOpt = Annotated[list[str] | None, typer.Option("--metric", "-m", help="metric names, "
                       f"comma-separated or repeated (default {DEFAULT_METRICS})")]
PermOpt = Annotated[int, typer.Option("--permutations", min=0, help="permutation null draws "
                                      "for p-values (0: none)")]
BootOpt = Annotated[int, typer.Option("--bootstrap", min=0, help="bootstrap draws for 95% "
                                      "intervals (0: none)")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="output folder "
                                            "(default runs/compare-A-vs-B)")]
ImagesOpt = Annotated[int, typer.Option("--images", min=0, help="images shown as PCA-to-RGB "
                                        "activation maps in the report")]


def _label(side: Any) -> str:
    return side.model + (" [random init]" if side.random_init else "")


def resolve_metrics(names: list[str] | None) -> list[Any]:
    """Metric objects for the names given (or the defaults); unknown names are a clear error."""
    from zoo.registry import get_registry

    registry = get_registry()
    return [registry.metric(n) for n in split_list(names) or DEFAULT_METRICS.split(",")]


def compare_cmd(model_a: Annotated[str, typer.Argument(help="first model (rows)")],
                model_b: Annotated[str, typer.Argument(help="second model (columns)")],
                data: DataOpt = "samples",
                layers_a: Annotated[list[str] | None, typer.Option(
                    "--layers-a", help="layers of A (names or globs; default all)")] = None,
                layers_b: Annotated[list[str] | None, typer.Option(
                    "--layers-b", help="layers of B (names or globs; default all)")] = None,
                metric: MetricsOpt = None, reduce: ReduceOpt = "gap",
                permutations: PermOpt = 0, bootstrap: BootOpt = 0,
                random_init: RandomInitOpt = False, device: DeviceOpt = "cpu",
                batch_size: BatchOpt = 16, out: OutOpt = None, images: ImagesOpt = 4,
                skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
                json_: JsonOpt = False) -> None:
    """Compare two models layer by layer on the same images (rows paired by sample id)."""
    from zoo.cache import FeatureCache
    from zoo.features import parse_reduction

    parse_reduction(reduce)
    metrics = resolve_metrics(metric)
    za = load_model(model_a, random_init=random_init, device=device)
    zb = za if model_b == model_a else load_model(model_b, random_init=random_init,
                                                  device=device)
    dataset = load_data(data, skip_bad)
    folder = out_dir(out or f"runs/compare-{slug(za.id)}-vs-{slug(zb.id)}")
    comparison, summary = run_compare(za, zb, dataset, split_list(layers_a),
                                      split_list(layers_b), metrics, reduce, permutations,
                                      bootstrap, device, batch_size, folder, images,
                                      None if no_cache else FeatureCache())
    if json_:
        print_json(summary)
        return
    print_comparison(comparison)
    print(f"\nreport: {folder / 'report.html'}")


def run_compare(za: Any, zb: Any, dataset: Any, layers_a: list[str] | None,
                layers_b: list[str] | None, metrics: list[Any], reduce: str, permutations: int,
                bootstrap: int, device: str, batch_size: int, folder: Path, images: int,
                cache: Any, extra_sections: list[tuple[str, str]] | None = None
                ) -> tuple[Any, dict[str, Any]]:
    """Extract, score and write a comparison of two loaded models (shared by `zoo demo`)."""
    from zoo.compare import compare_sides, side_features

    with progress_bar() as progress:
        side_a, ids_a = side_features(za, dataset, layers_a, reduce, batch_size, cache, progress)
        side_b, ids_b = side_features(zb, dataset, layers_b, reduce, batch_size, cache, progress)
        comparison = compare_sides(side_a, ids_a, side_b, ids_b, metrics, dataset.name, reduce,
                                   device, progress=progress)
        add_statistics(comparison, permutations, bootstrap, device, progress)
        activations = activation_maps([za, zb], [side_a, side_b], dataset, images, cache)
    summary = write_comparison(comparison, folder, activations, dataset, extra_sections or [])
    return comparison, summary


def add_statistics(c: Any, permutations: int, bootstrap: int, device: str,
                   progress: Any = None) -> None:
    """Permutation p-values, bootstrap intervals and (for biased CKA) the expected value for
    unrelated data, for every metric of comparison `c`."""
    from zoo.metrics.stats import bootstrap_intervals, expected_cka_matrix, permutation_pvalues

    for name, r in c.results.items():
        if permutations:
            r.p_values = permutation_pvalues(r.metric, c.paired_a, c.paired_b,
                                             permutations=permutations, device=device,
                                             progress=progress)
        if bootstrap:
            r.ci = bootstrap_intervals(r.metric, c.paired_a, c.paired_b, resamples=bootstrap,
                                       device=device, progress=progress)
        if name == "cka":
            r.baseline = expected_cka_matrix(c.paired_a, c.paired_b)


def activation_maps(models: list[Any], sides: list[Any], dataset: Any, images: int,
                    cache: Any, per_model: int = 6) -> dict[str, dict[str, np.ndarray]]:
    """PCA-to-RGB maps of up to `per_model` spatial layers (spread over depth) per model, for
    the first `images` images: {model label: {layer: (images, h, w, 3)}}."""
    from zoo.extract import extract
    from zoo.features import LayerFeatures
    from zoo.report import pca_rgb

    if not images:
        return {}
    subset = dataset.subset(range(min(images, len(dataset))))
    out: dict[str, dict[str, np.ndarray]] = {}
    for model, side in zip(models, sides):
        # maps, and tokens with a patch grid (a stride); multi-scale token sets have none
        spatial = [i for i in side.layers if i.layout == "NCHW"
                   or (i.layout == "NLC" and i.stride is not None)]
        if not spatial:
            continue
        pick = [spatial[k] for k in sorted({round(x) for x in
                                            np.linspace(0, len(spatial) - 1, per_model)})]
        feats = extract(model, subset, [i.name for i in pick], "none", cache=cache)
        out[side.model] = {i.name: pca_rgb(LayerFeatures.spatial(feats[i.name]))
                             for i in pick}
    return out


def write_comparison(c: Any, folder: Path, activations: dict[str, dict[str, np.ndarray]],
                     dataset: Any, extra_sections: list[tuple[str, str]]) -> dict[str, Any]:
    """results.csv/json, one heatmap per metric, activations PNG, report.html (written last)."""
    from zoo.io import write_csv, write_json
    from zoo.report import activation_grid_png, heatmap_png, html_report, html_table, img_tag

    rows = c.rows()
    for row in rows:
        row["random_init_a"], row["random_init_b"] = c.a.random_init, c.b.random_init
    write_csv(folder / "results.csv", rows)
    sections: list[tuple[str, str]] = []
    if c.a.random_init or c.b.random_init:
        sections.append(("Warning", "<p class='note'>Random-init weights: these numbers describe "
                         "untrained networks, not the published models.</p>"))
    sections.append(("Setup", html_table([{
        "model A (rows)": _label(c.a), "model B (columns)": _label(c.b), "data": c.data,
        "samples": c.n, "reduction": c.reduction,
        "layers": f"{len(c.a.layers)} x {len(c.b.layers)}"}])))
    sections += extra_sections
    summary: dict[str, Any] = {"model_a": c.a.model, "model_b": c.b.model,
                               "random_init_a": c.a.random_init,
                               "random_init_b": c.b.random_init, "data": c.data, "n": c.n,
                               "reduction": c.reduction, "metrics": {}, "rows": rows}
    for name, r in c.results.items():
        png = f"heatmap_{slug(name)}.png"
        heatmap_png(folder / png, r.values, c.a.names, c.b.names, c.a.roles, c.b.roles,
                    f"{name}: {_label(c.a)} vs {_label(c.b)} (n={c.n}, {c.reduction})",
                    _label(c.a), _label(c.b))
        best, roles = c.best_matches(name), c.role_summary(name)
        summary["metrics"][name] = {"kind": r.metric.kind,
                                    "reference": getattr(r.metric, "reference", ""),
                                    "best_matches": best, "role_summary": roles,
                                    "heatmap": png}
        baseline = ""
        if r.p_values is not None:
            finite = r.p_values[np.isfinite(r.p_values)]
            baseline += (f"<p>Permutation test (rows of B shuffled): {int((finite < 0.05).sum())}"
                         f" of {finite.size} layer pairs have p &lt; 0.05.</p>")
        if r.baseline is not None:
            baseline += (f"<p>Expected {name} for unrelated data at n={c.n}: "
                        f"{np.nanmean(r.baseline):.3f} on average over pairs (compare with the "
                        "values, or use cka-debiased).</p>")
        sections.append((f"{name} ({r.metric.kind})",
                         f"<p>{getattr(r.metric, 'description', '')}. "
                         f"{getattr(r.metric, 'reference', '')}</p>{baseline}{img_tag(png, name)}"
                         f"<h3>By role</h3>{html_table(roles)}"
                         f"<h3>Best match in B for each layer of A</h3>{html_table(best)}"))
    if activations:
        png = "activations.png"
        columns = {f"{model}\n{layer}": rgb for model, layers in activations.items()
                   for layer, rgb in layers.items()}
        n_img = len(next(iter(columns.values())))
        size = next(iter(columns.values())).shape[1]
        inputs = [np.asarray(dataset.image(i).resize((size * 4, size * 4))) for i in range(n_img)]
        activation_grid_png(folder / png, inputs, columns,
                            "PCA-to-RGB activations (3 principal channel directions per layer)"
                            + (" [random init]" if c.a.random_init or c.b.random_init else ""))
        sections.append(("Activation images", "<p>Top-3 principal components of each layer's "
                         "channels over these images, as RGB; each map on the layer's own grid "
                         "(tokens on their patch grid).</p>" + img_tag(png, "activations")))
        summary["activations"] = png
    write_json(folder / "results.json", summary)
    html_report(folder / "report.html", f"zoo compare: {_label(c.a)} vs {_label(c.b)}", sections)
    return {k: v for k, v in summary.items() if k != "rows"} | {"out": str(folder)}


def print_comparison(c: Any) -> None:
    """Role summaries for every metric and best matches for the first."""
    print(f"{_label(c.a)} vs {_label(c.b)} on {c.data}: n={c.n}, {c.reduction}, "
          f"{len(c.a.layers)} x {len(c.b.layers)} layers")
    rows = [[s["metric"], s["role_a"], s["role_b"], s["mean"], s["max"]]
            for name in c.results for s in c.role_summary(name)]
    print_table("summary by role (mean / max over layer pairs)",
                ["metric", "role A", "role B", "mean", "max"], rows)
    first = next(iter(c.results))
    matches = c.best_matches(first)
    with_p = bool(matches) and "p_value" in matches[0]
    print_table(f"best match in {c.b.model} for each layer of {c.a.model} ({first})",
                ["layer A", "role", "best layer B", "role", first] + (["p"] if with_p else []),
                [[m["layer_a"], m["role_a"], m["best_b"], m["role_b"], m["value"]]
                 + ([m["p_value"]] if with_p else []) for m in matches])


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
