"""`zoo cut MODELS...`: AlignedCut, one Nystrom normalized cut over the pixels of several
models' layers (see `zoo.align.pipeline.cut`)."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.align.learned import AlignConfig
from zoo.align.nystrom import DEFAULT_LANDMARKS
from zoo.cli.common import (
    BatchOpt,
    DataOpt,
    DeviceOpt,
    DimOpt,
    JsonOpt,
    LayersOpt,
    ModelsArg,
    ModelWeightsOpt,
    NoCacheOpt,
    OutOpt,
    OverwriteOpt,
    RandomInitOpt,
    SeedOpt,
    SkipBadOpt,
    TrustWeightsOpt,
    load_data,
    load_options,
    model_weights,
    out_folder,
    print_json,
    print_table,
    progress_bar,
    split_list,
)

DIM = AlignConfig().dim


def cut_cmd(models: ModelsArg, data: DataOpt = "samples", layers: LayersOpt = None,
            n_eig: Annotated[int, typer.Option("--n-eig", min=1, help="eigenvectors")] = 20,
            landmarks: Annotated[int, typer.Option("--landmarks", min=2, help="Nystrom "
                                 "landmarks (farthest-point sampled)")] = DEFAULT_LANDMARKS,
            sigma: Annotated[float | None, typer.Option("--sigma", help="affinity bandwidth "
                             "(default: from the median pairwise distance)")] = None,
            affinity: Annotated[str, typer.Option("--affinity", help="rbf or cosine")] = "rbf",
            precision: Annotated[str, typer.Option("--precision", help="auto (float32 where it "
                                 "resolves the cut, else float64 with a note), float32 or "
                                 "float64")] = "auto",
            dim: DimOpt = DIM,
            maps: Annotated[str | None, typer.Option("--maps", help="folder of learned maps "
                            "from `zoo align` (default: PCA + Procrustes onto the first "
                            "layer)")] = None,
            images: Annotated[int, typer.Option("--images", min=1, help="images shown in the "
                              "colour figure")] = 8,
            seed: SeedOpt = 0, weights: ModelWeightsOpt = None,
            random_init: RandomInitOpt = False, trust_weights: TrustWeightsOpt = False,
            device: DeviceOpt = "cpu", batch_size: BatchOpt = 16, out: OutOpt = None,
            overwrite: OverwriteOpt = False,
            skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
            json_: JsonOpt = False) -> None:
    """One normalized cut over the pixels of MODELS' layers: aligned colours, eigenvectors,
    segmentation by layer (datasets with masks) and positional bias."""
    from zoo.align.nystrom import check_precision
    from zoo.align.pipeline import cut

    check_precision(precision)
    dataset = load_data(data, skip_bad)
    options = dict(n_eig=n_eig, landmarks=landmarks, sigma=sigma, affinity=affinity, dim=dim,
                   maps=maps, seed=seed, weights=model_weights(weights, models),
                   random_init=random_init, precision=precision)
    folder = out_folder(out, "cut", models, {"data": dataset.fingerprint,
                                            "layers": split_list(layers), **options}, overwrite)
    with progress_bar() as progress:
        run = cut(models, dataset, split_list(layers), device=device, batch_size=batch_size,
                  cache=not no_cache, progress=progress,
                  options=load_options(trust=trust_weights), **options)
    run.save(folder, overwrite, images)
    if json_:
        print_json({**run.to_dict(), "out": str(folder)})
        return
    rows, nodes = run.rows(), run.to_dict()["blocks"][-1]["nodes"][1]
    print_table(f"AlignedCut of {len(rows)} layers{run.note} on {dataset.name} ({len(dataset)} "
                f"images, {nodes} nodes, sigma {run.result.cut.sigma:.4g})",
                ["model", "layer", "depth", "grid", "align R2", "position R2", "chance",
                 "border R2", "mIoU"],
                [[r["model"], r["layer"], r["depth"], r["grid"], r["alignment_r2"],
                  r["position_r2"], r["position_chance"], r["border_r2"], r["miou"]]
                 for r in rows])
    if run.result.cut.note:
        print(f"note: {run.result.cut.note}")
    print(f"columns are explained in {folder / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("cut")(cut_cmd)
