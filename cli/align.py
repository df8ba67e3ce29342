"""`zoo align MODELS...`: learned linear channel maps into a shared space, or a closed-form
alignment of two layers (see `zoo.align.pipeline.align`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zoo.align.learned import AlignConfig
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

TRAINING = AlignConfig()  # defaults of `zoo align`


def align_cmd(models: ModelsArg, data: DataOpt = "samples", layers: LayersOpt = None,
              target: Annotated[str | None, typer.Option("--target", "-t", help="per-image "
                                "target: .csv/.npy keyed by sample id, or MODEL:LAYER")] = None,
              method: Annotated[str, typer.Option("--method", "-m", help="learned, or a "
                                "closed-form alignment of two layers: cca, procrustes, "
                                "ridge")] = "learned",
              dim: DimOpt = TRAINING.dim,
              eigen_weight: Annotated[float, typer.Option(help="eigen-constraint weight")]
              = TRAINING.eigen_weight,
              zero_weight: Annotated[float, typer.Option(help="zero-centring weight")]
              = TRAINING.zero_weight,
              cov_weight: Annotated[float, typer.Option(help="covariance penalty weight")]
              = TRAINING.cov_weight,
              epochs: Annotated[int, typer.Option(min=1, help="most training epochs")]
              = TRAINING.epochs,
              patience: Annotated[int, typer.Option(min=1, help="epochs without held-out "
                                  "improvement before stopping")] = TRAINING.patience,
              lr: Annotated[float, typer.Option(help="Adam learning rate")] = TRAINING.lr,
              seed: SeedOpt = 0, weights: ModelWeightsOpt = None,
              random_init: RandomInitOpt = False, trust_weights: TrustWeightsOpt = False,
              device: DeviceOpt = "cpu", batch_size: BatchOpt = 16, out: OutOpt = None,
              overwrite: OverwriteOpt = False,
              skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
              json_: JsonOpt = False) -> None:
    """Learn one linear map per layer of MODELS into a shared space that predicts --target, or
    (--method cca|procrustes|ridge) align two layers in closed form with a held-out score."""
    from zoo.align.pipeline import align

    dataset = load_data(data, skip_bad)
    config = AlignConfig(dim=dim, eigen_weight=eigen_weight, zero_weight=zero_weight,
                         cov_weight=cov_weight, lr=lr, epochs=epochs, patience=patience,
                         seed=seed)
    folder = out_folder(out, "align", models, {"data": dataset.fingerprint, "target": target,
                                              "method": method, "config": config.__dict__,
                                              "layers": split_list(layers)}, overwrite)
    with progress_bar() as progress:
        run = align(models, dataset, split_list(layers), target=target, method=method,
                    config=config, seed=seed, weights=model_weights(weights, models),
                    random_init=random_init, device=device, batch_size=batch_size,
                    cache=not no_cache, progress=progress,
                    options=load_options(trust=trust_weights))
    run.save(folder, overwrite)
    if json_:
        print_json({**run.scores, "out": str(folder)})
        return
    _print_align(run)
    print(f"wrote results to {folder}")


def _print_align(run: Any) -> None:
    s = run.scores
    if run.method == "learned":
        best = run.history[s["best_epoch"] - 1]
        print_table(f"learned maps into {s['dim']} dims, best epoch {s['best_epoch']} of "
                    f"{s['epochs_run']}", ["at the best epoch", "value"],
                    [[k, best[k]] for k in ("val_r2", "target", "eigen", "zero", "cov")])
        return
    print_table(f"{s['method']}: {s['x']} -> {s['y']}",
                ["score", "held-out", "train", "train rows", "test rows"],
                [[s["score_name"], s["score"], s["train_score"], s["n_train"], s["n_test"]]])


def register(app: typer.Typer) -> None:
    app.command("align")(align_cmd)
