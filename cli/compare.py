"""`zoo compare A B`: layer x layer matrices of two models on the same images; tables on
stdout, CSV, JSON, heatmaps and an HTML report in a new run folder."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import (
    BatchOpt,
    CropPctOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LayersOpt,
    LoaderWorkersOpt,
    ModelWeightsOpt,
    NoCacheOpt,
    OverwriteOpt,
    PrecisionOpt,
    RandomInitOpt,
    ReduceOpt,
    SizeOpt,
    SkipBadOpt,
    TrustWeightsOpt,
    load_data,
    load_options,
    model_weights,
    out_folder,
    per_model,
    print_comparison,
    print_json,
    progress_bar,
    split_list,
)

DEFAULT_METRICS = "cka,cka-debiased,cka-rbf,svcca,rsa"
MetricsOpt = Annotated[list[str] | None, typer.Option("--metric", "-m", help="metric names, "
                       f"comma-separated or repeated (default {DEFAULT_METRICS})")]
PermOpt = Annotated[int, typer.Option("--permutations", min=0, help="permutation null draws "
                                      "for p-values (0: none)")]
IntervalsOpt = Annotated[bool, typer.Option("--intervals", help="95% confidence intervals "
                                            "(grouped jackknife; cka and cka-debiased, the "
                                            "metrics whose coverage is tested)")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="output folder (default: a new "
                                            "runs/compare-A-vs-B-<hash>)")]
BaselineOpt = Annotated[str | None, typer.Option("--baseline", help="add B's twin as a "
                        "reference band: random-init (same architecture, random weights) or "
                        "seed (another seed: --baseline-weights); when B is random-init, either "
                        "is another init seed")]
BaselineWeightsOpt = Annotated[str | None, typer.Option("--baseline-weights", help="checkpoint "
                               "of B trained from another seed (for --baseline seed)")]
ImagesOpt = Annotated[int, typer.Option("--images", min=0, help="images shown as PCA-to-RGB "
                                        "activation maps in the report")]


def compare_cmd(model_a: Annotated[str, typer.Argument(help="first model (rows)")],
                model_b: Annotated[str, typer.Argument(help="second model (columns)")],
                data: DataOpt = "samples", layers: LayersOpt = None,
                metric: MetricsOpt = None, reduction: ReduceOpt = "gap",
                permutations: PermOpt = 0, intervals: IntervalsOpt = False,
                weights: ModelWeightsOpt = None, random_init: RandomInitOpt = False,
                device: DeviceOpt = "cpu", batch_size: BatchOpt = 16, out: OutOpt = None,
                overwrite: OverwriteOpt = False, images: ImagesOpt = 4,
                skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
                size: SizeOpt = None, crop_pct: CropPctOpt = None,
                trust_weights: TrustWeightsOpt = False, loader_workers: LoaderWorkersOpt = 0,
                precision: PrecisionOpt = "fp32", baseline: BaselineOpt = None,
                baseline_weights: BaselineWeightsOpt = None, json_: JsonOpt = False) -> None:
    """Compare two models layer by layer on the same images (rows paired by sample id)."""
    from zoo.api import compare_models
    from zoo.comparisons.comparison import resolve_metrics
    from zoo.features.layers import parse_reduction
    from zoo.model.loading import check_device, load_models
    from zoo.report.comparison import summary

    parse_reduction(reduction)
    metrics = resolve_metrics(",".join(split_list(metric) or [DEFAULT_METRICS]))
    paths = model_weights(weights, [model_a, model_b])
    chosen = per_model(layers, [model_a, model_b], "--layers")
    device = check_device(device)
    dataset = load_data(data, skip_bad)
    options = load_options(size, crop_pct, None, trust_weights)
    za, zb = load_models([model_a, model_b], paths, random_init=random_init, device=device,
                         **options)
    folder = out_folder(out, "compare", [za.id, "vs", zb.id], {
        "data": dataset.fingerprint, "layers": chosen, "metrics": [m.name for m in metrics],
        "reduction": reduction, "permutations": permutations, "intervals": intervals,
        "weights": [za.fingerprint, zb.fingerprint], "images": images,
        "precision": precision, "baseline": baseline, "baseline_weights": baseline_weights},
        overwrite)
    with progress_bar() as progress:
        comparison = compare_models(za, zb, dataset, metrics, layers_a=chosen[model_a],
                             layers_b=chosen[model_b], reduction=reduction,
                             permutations=permutations, intervals=intervals, images=images,
                             device=device, batch_size=batch_size, cache=not no_cache,
                             progress=progress, workers=loader_workers, precision=precision,
                             baseline=baseline, baseline_weights=baseline_weights)
    comparison.save(folder, overwrite=overwrite)
    if json_:
        print_json(summary(comparison) | {"out": str(folder)})
        return
    print_comparison(comparison)
    print(f"\nreport: {folder / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
