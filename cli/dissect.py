"""`zoo dissect MODEL` (unit/concept profiles per layer) and `zoo lce DIR...` (Learned Concepts
Embedding of many dissections): tables on stdout; CSV, JSON, .npy and PNG in a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.common import (
    BatchOpt,
    DeviceOpt,
    JsonOpt,
    LayersOpt,
    NoCacheOpt,
    OutOpt,
    OverwriteOpt,
    RandomInitOpt,
    TrustWeightsOpt,
    WeightsOpt,
    load_options,
    out_folder,
    print_json,
    print_table,
    progress_bar,
    split_list,
)

ConceptsOpt = Annotated[str, typer.Option("--concepts", "-c", help="synthetic[:N], "
                                          "broden:PATH (or a Broden folder), colour:DATA")]


def dissect_cmd(model: Annotated[str, typer.Argument(help="model id or family")],
                concepts: ConceptsOpt = "synthetic", layers: LayersOpt = None,
                quantile: Annotated[float, typer.Option("--quantile", "-q", help="top "
                                    "activation quantile that makes a unit active")] = 0.005,
                iou_cutoff: Annotated[float, typer.Option("--iou-cutoff", help="a unit is "
                                      "labelled when its best IoU exceeds this")] = 0.04,
                stability: Annotated[int, typer.Option("--stability", min=0, help="bootstrap "
                                     "resamples for each unit's label stability (0: none)")] = 0,
                weights: WeightsOpt = None, random_init: RandomInitOpt = False,
                trust_weights: TrustWeightsOpt = False,
                device: DeviceOpt = "cpu", batch_size: BatchOpt = 16, out: OutOpt = None,
                overwrite: OverwriteOpt = False, no_cache: NoCacheOpt = False,
                json_: JsonOpt = False) -> None:
    """Label MODEL's units with concepts (Network Dissection) on every spatial layer."""
    from zoo.api import load
    from zoo.concepts import dissect_model
    from zoo.concepts.dissection import check_settings

    check_settings(quantile, iou_cutoff)
    zmodel = load(model, weights=weights, random_init=random_init, device=device,
                  **load_options(trust=trust_weights))
    folder = out_folder(out, "dissect", [zmodel.id], {
        "concepts": concepts, "layers": split_list(layers), "quantile": quantile,
        "iou_cutoff": iou_cutoff, "stability": stability, "weights": zmodel.fingerprint},
        overwrite)
    with progress_bar() as progress:
        run = dissect_model(zmodel, concepts, split_list(layers), quantile=quantile,
                            iou_cutoff=iou_cutoff, stability=stability, batch_size=batch_size,
                            cache=not no_cache, progress=progress)
    run.save(folder, overwrite)
    rows = run.rows()
    if json_:
        print_json({**run.to_dict(), "layers": rows, "out": str(folder)})
        return
    print_table(f"{run.label} dissected on {run.concepts.name} ({len(run.concepts)} images, "
                f"top {quantile:g}, IoU > {iou_cutoff:g})",
                ["layer", "units", "labelled", "top concepts", "by category (units/concepts)"],
                [[r["layer"], r["units"], r["labelled"], _top(r["profile"]),
                  ", ".join(f"{c} {v['units']}/{v['concepts']}"
                            for c, v in r["abstracted"].items())] for r in rows])
    print(f"tables and plots in {folder}")


def _top(profile: dict[str, int], n: int = 4) -> str:
    best = sorted(profile.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{c} {k}" for c, k in best) or "-"


def lce_cmd(folders: Annotated[list[Path], typer.Argument(help="`zoo dissect` output folders")],
            layers: LayersOpt = None,
            performance: Annotated[Path | None, typer.Option(
                "--performance", "-p", help="CSV with columns model,task,score")] = None,
            max_k: Annotated[int, typer.Option("--max-k", min=1, help="largest KMeans k tried "
                                               "by the elbow method")] = 8,
            seed: Annotated[int, typer.Option("--seed", help="KMeans seed")] = 0,
            out: OutOpt = None, overwrite: OverwriteOpt = False, json_: JsonOpt = False) -> None:
    """Embed the concept profiles of dissected (model, layer) entries: PCA, KMeans, correlations."""
    from zoo.concepts import embed

    result = embed(folders, split_list(layers), performance=performance, max_k=max_k,
                   seed=seed)
    folder = out_folder(out, "lce", [f.name for f in folders][:4], {
        "folders": [str(f) for f in folders], "layers": split_list(layers), "seed": seed,
        "max_k": max_k, "performance": str(performance)}, overwrite)
    result.save(folder, overwrite)
    if json_:
        print_json(result.to_dict() | {"out": str(folder)})
        return
    axes = [f"pc{a + 1}" for a in range(result.coords.shape[1])]
    note = " [random init]" if any(e.random_init for e in result.entries) else ""
    print_table(f"Learned Concepts Embedding{note} (explained variance: " + ", ".join(
        f"{a} {100 * v:.1f}%" for a, v in zip(axes, result.explained)) + f"; k={result.k})",
                ["entry", *axes, "cluster"],
                [[e.name, *map(float, result.coords[i]), int(result.clusters[i])]
                 for i, e in enumerate(result.entries)])
    print_table("axes vs units per category (Pearson r, p)", ["axis", "category", "r", "p"],
                [[f"pc{c.axis + 1}", c.variable, c.r, c.p] for c in result.axis_categories])
    if result.performance:
        print_table("axes vs performance (Pearson r, p)", ["axis", "task", "r", "p", "n"],
                    [[f"pc{c.axis + 1}", c.variable, c.r, c.p, c.n]
                     for c in result.performance])
    print(f"tables and plots in {folder}")


def register(app: typer.Typer) -> None:
    app.command("dissect")(dissect_cmd)
    app.command("lce")(lce_cmd)
