"""`zoo dissect MODEL` (unit/concept profiles per layer) and `zoo lce DIR...` (Learned Concepts
Embedding of many dissections): tables on stdout; CSV, JSON, .npy and PNG in --out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from zoo.cli.common import (BatchOpt, DeviceOpt, JsonOpt, LayersOpt, NoCacheOpt,
                            RandomInitOpt, WeightsOpt, load_model, out_dir, print_json,
                            print_table, progress_bar, split_list)
from zoo.cli.common import slug

ConceptsOpt = Annotated[str, typer.Option("--concepts", "-c", help="synthetic[:N], "
                                          "broden:PATH (or a Broden folder), colour:DATA")]
QuantileOpt = Annotated[float, typer.Option("--quantile", "-q", help="top activation quantile "
                                            "that makes a unit active")]
CutoffOpt = Annotated[float, typer.Option("--iou-cutoff", help="a unit is labelled when its "
                                          "best IoU exceeds this")]
StabilityOpt = Annotated[int, typer.Option("--stability", min=0, help="bootstrap resamples "
                                           "for each unit's label stability (0: none)")]
DissectOutOpt = Annotated[str | None, typer.Option("--out", "-o", help="output folder "
                                                   "(default runs/dissect-MODEL)")]
LceOutOpt = Annotated[str | None, typer.Option("--out", "-o", help="output folder "
                                               "(default runs/lce)")]


def _tagged(progress: Callable[[str, int, int], None] | None, layer: str
            ) -> Callable[[str, int, int], None] | None:
    """The progress callback with the layer's name on every task."""
    if progress is None:
        return None
    return lambda task, done, total: progress(f"{layer}: {task}", done, total)


def dissect_cmd(model: Annotated[str, typer.Argument(help="model id or family")],
                concepts: ConceptsOpt = "synthetic", layers: LayersOpt = None,
                quantile: QuantileOpt = 0.005, iou_cutoff: CutoffOpt = 0.04,
                stability: StabilityOpt = 0, weights: WeightsOpt = None,
                random_init: RandomInitOpt = False, device: DeviceOpt = "cpu",
                batch_size: BatchOpt = 16, out: DissectOutOpt = None,
                no_cache: NoCacheOpt = False,
                json_: JsonOpt = False) -> None:
    """Label MODEL's units with concepts (Network Dissection) on every spatial layer."""
    from zoo.cache import FeatureCache
    from zoo.concepts import dissect, label_stability, open_concepts
    from zoo.concepts.dissect import check_settings
    from zoo.concepts.plot import plot_profile
    from zoo.concepts.report import layer_folder, start_run, write_layer, write_summary
    from zoo.extract import extract, select_layers

    check_settings(quantile, iou_cutoff)
    zmodel = load_model(model, weights, random_init, device)
    spatial = [n for n, info in zmodel.layers.items() if info.layout in ("NCHW", "NLC")]
    names = select_layers(spatial if layers is None else list(zmodel.layers),
                          split_list(layers), zmodel.id)
    concept_set = open_concepts(concepts)
    folder = out_dir(out or f"runs/dissect-{slug(zmodel.id)}")
    start_run(folder)
    cache = None if no_cache else FeatureCache()
    entries = []
    with progress_bar() as progress:
        feats = extract(zmodel, concept_set.dataset(), names, "none", batch_size, cache, progress)
        for name in names:
            tagged = _tagged(progress, name)
            result = dissect(feats[name], concept_set, quantile=quantile, iou_cutoff=iou_cutoff,
                             progress=tagged)
            stable = (label_stability(feats[name], concept_set, result, stability,
                                      progress=tagged) if stability else None)
            entries.append(write_layer(folder, name, result, stable))
            plot_profile(result, f"{zmodel.id}{' [random init]' * zmodel.random_init} {name}",
                         layer_folder(folder, name) / "profile.png")
    run = {"model": zmodel.id, "random_init": zmodel.random_init, "concepts": concept_set.name,
           "images": len(concept_set), "quantile": quantile, "iou_cutoff": iou_cutoff,
           "stability_resamples": stability}
    write_summary(folder, run, concept_set.concepts, entries)
    if json_:
        print_json({**run, "layers": entries, "out": str(folder)})
        return
    note = " [random init]" if zmodel.random_init else ""
    print_table(f"{zmodel.id}{note} dissected on {concept_set.name} ({len(concept_set)} images, "
                f"top {quantile:g}, IoU > {iou_cutoff:g})",
                ["layer", "units", "labelled", "top concepts", "by category (units/concepts)"],
                [[e["layer"], e["units"], e["labelled"], _top(e["profile"]),
                  ", ".join(f"{c} {v['units']}/{v['concepts']}"
                            for c, v in e["abstracted"].items())] for e in entries])
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
            out: LceOutOpt = None, json_: JsonOpt = False) -> None:
    """Embed the concept profiles of dissected (model, layer) entries: PCA, KMeans, correlations."""
    from zoo.concepts import lce
    from zoo.concepts.lce import read_performance
    from zoo.concepts.plot import plot_lce
    from zoo.concepts.report import read_profiles, write_lce

    entries = read_profiles(folders, split_list(layers))
    result = lce(entries, 3, max_k, seed, read_performance(performance) if performance else None)
    folder = out_dir(out or "runs/lce")
    write_lce(folder, result)
    plot_lce(result, folder / "lce_2d.png", dims=2)
    plot_lce(result, folder / "lce_3d.png", dims=3)
    if json_:
        print_json(_summary(result) | {"out": str(folder)})
        return
    axes = [f"pc{a + 1}" for a in range(result.coords.shape[1])]
    print_table("Learned Concepts Embedding (explained variance: " + ", ".join(
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


def _summary(result: Any) -> dict[str, Any]:
    return {"entries": [e.name for e in result.entries], "coords": result.coords,
            "explained_variance": result.explained, "k": result.k,
            "clusters": result.clusters}


def register(app: typer.Typer) -> None:
    app.command("dissect")(dissect_cmd)
    app.command("lce")(lce_cmd)
