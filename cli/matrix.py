"""`zoo matrix MODELS...`: the all-pairs (model, layer) matrix across models, run as a sharded,
resumable plan (`--run`, `--shard`, `--workers`); `zoo matrix merge RUN` assembles one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zoo.cli.common import (
    BatchOpt,
    CropPctOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LayersOpt,
    ModelWeightsOpt,
    NoCacheOpt,
    OverwriteOpt,
    RandomInitOpt,
    ReduceOpt,
    SizeOpt,
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
from zoo.errors import ZooError
from zoo.io import protect_input

MERGE_HELP = """Usage: zoo matrix merge RUN [--out DIR] [--overwrite] [--json]

  Assemble a finished (sharded) matrix run folder RUN into one result: results.csv/json,
  the heatmap and report.html in --out (default: a new runs/matrix-MODELS-<hash>). Every
  shard must have finished its units (`zoo matrix ... --shard K/N --run RUN`).

Options:
  --out, -o DIR  output folder (never RUN itself, nor a folder holding it)
  --overwrite    replace an existing --out folder
  --json         print JSON instead of tables
  --help         Show this message and exit."""


def merge_help(argv: list[str]) -> bool:
    """`zoo matrix merge --help`: print the merge help (typer would show `zoo matrix`'s)."""
    if argv[:2] == ["matrix", "merge"] and ("--help" in argv or "-h" in argv):
        print(MERGE_HELP)
        return True
    return False


def matrix_cmd(models: Annotated[list[str] | None, typer.Argument(
                   help="model ids or families; or `merge RUN` to assemble a sharded run")] = None,
               all_: Annotated[bool, typer.Option("--all", help="every registered family "
                                                  "(its default model)")] = False,
               data: DataOpt = "samples", layers: LayersOpt = None,
               metric: Annotated[str, typer.Option("--metric", "-m", help="metric name")] = "cka",
               reduction: ReduceOpt = "gap", weights: ModelWeightsOpt = None,
               random_init: RandomInitOpt = False, trust_weights: TrustWeightsOpt = False,
               device: DeviceOpt = "cpu", batch_size: BatchOpt = 16,
               out: Annotated[str | None, typer.Option("--out", "-o", help="output folder "
                              "(default: a new runs/matrix-MODELS-<hash>; also for merge)")]
               = None,
               overwrite: OverwriteOpt = False, skip_bad: SkipBadOpt = False,
               size: SizeOpt = None, crop_pct: CropPctOpt = None,
               no_cache: NoCacheOpt = False, json_: JsonOpt = False,
               run: Annotated[str | None, typer.Option("--run", help="run folder on a shared "
                              "filesystem (default: one per plan in the cache)")] = None,
               shard: Annotated[str | None, typer.Option("--shard", help="K/N: run only this "
                                "share (default RANK/WORLD_SIZE under torchrun, or the SLURM "
                                "array task)")] = None,
               workers: Annotated[str | None, typer.Option("--workers", help="auto (one per "
                                  "visible GPU with --device cuda, else one per CPU core) or "
                                  "N processes on this machine")] = None,
               wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for "
                               "units other shards still run")] = 3600.0,
               samples_per_unit: Annotated[int, typer.Option("--samples-per-unit", min=1,
                                           help="images per extract unit")] = 1024,
               block: Annotated[int, typer.Option("--block", min=1, help="layers per side of "
                                "a score unit")] = 64) -> None:
    """All-pairs layer matrix across models (layer globs in --layers apply to every model)."""
    from zoo.comparisons.matrix import (
        load_matrix,
        open_matrix,
        run_matrix,
        run_workers,
        worker_count,
    )
    from zoo.comparisons.plan import parse_shard, shard_from_env
    from zoo.model.loading import check_device
    from zoo.registry.host import get_registry

    if models and models[0] == "merge":
        if len(models) != 2:
            raise ZooError("usage: zoo matrix merge RUN [--out DIR]")
        result = load_matrix(Path(models[1]))
        folder = out_folder(out, "matrix", result.models, {"run": str(result.run)}, overwrite)
        return _write(result, str(folder), overwrite, json_)
    names = list(get_registry().families) if all_ else list(models or [])
    if not names:
        raise ZooError("name at least one model, or pass --all")
    device = check_device(device)
    dataset = load_data(data, skip_bad)
    options: dict[str, Any] = dict(layers=split_list(layers), reduction=reduction,
                                   random_init=random_init, weights=model_weights(weights, names),
                                   batch_size=batch_size, samples_per_unit=samples_per_unit,
                                   block=block, run=run, cache=not no_cache,
                                   options=load_options(size, crop_pct, None, trust_weights),
                                   skip_broken=all_)
    if run:
        protect_input(run, "matrix run")
    folder = out_folder(out, "matrix", names, {"data": dataset.fingerprint, "metric": metric,
                                              **{k: v for k, v in options.items()
                                                 if k not in ("run", "cache", "skip_broken")}},
                        overwrite)
    k, n = (0, 1) if workers is not None else parse_shard(shard) if shard else shard_from_env()
    if workers is not None or n > 1:  # several processes share one named run folder
        options["run"] = open_matrix(names, dataset, metric, **{
            key: v for key, v in options.items() if key != "cache"})[1]
    with progress_bar() as progress:
        if workers is not None:
            run_workers(options["run"], worker_count(workers, device), data, skip_bad, device,
                        wait)
        result = run_matrix(names, dataset, metric, device=device, shard=(k, n), wait=wait,
                            progress=progress, **options)
    if n > 1:
        print(f"shard {k}/{n} finished its units; when every shard has, run "
              f"`zoo matrix merge {options['run']}`", file=sys.stderr)
        return
    _write(result, str(folder), overwrite, json_)


def _write(result: Any, folder: str, overwrite: bool, json_: bool) -> None:

    result.save(folder, overwrite=overwrite)
    if json_:
        print_json(result.to_dict() | {"out": folder})
        return
    print(f"{result.metric.name} across {', '.join(result.models)}{result.note} on "
          f"{result.data}: n={result.n}, {result.reduction}, {len(result.labels)} layers")
    if result.baseline_mean is not None:
        print(f"expected {result.metric.name} for unrelated data at this n: "
              f"{result.baseline_mean:.3f} on average")
    print_table(f"best match in each other model ({result.metric.name}){result.note}",
                ["model", "layer", "in", "best layer", result.metric.name],
                [[m["model"], m["layer"], m["in"], m["best"] or m["reason"], m["value"]]
                 for m in result.best_match_rows()])
    print_table(f"change between consecutive layers (1 - {result.metric.name} or distance)"
                f"{result.note}", ["model", "steps", "mean", "max"],
                [[m, len(v), _stat(v, "mean"), _stat(v, "max")]
                 for m, (_, v) in result.smoothness().items()])
    for why, count in result.reason_counts().items():
        print(f"  {count} undefined: {why}")
    print(f"report: {Path(folder) / 'report.html'}")


def _stat(v: Any, how: str) -> float | None:
    import numpy as np

    finite = v[np.isfinite(v)]
    return float(getattr(np, how)(finite)) if finite.size else None


def register(app: typer.Typer) -> None:
    app.command("matrix")(matrix_cmd)
