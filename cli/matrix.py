"""`zoo matrix`: the all-pairs (model, layer) matrix across several models, with model blocks
and per-model smoothness profiles along depth; sharded, resumable runs (`--run`, `--shard`,
`--workers`) and `zoo matrix merge RUN`. The run itself is a `zoo.plan` plan of units."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from zoo.cli.common import (BatchOpt, DataOpt, DeviceOpt, JsonOpt, LayersOpt, NoCacheOpt,
                            RandomInitOpt, ReduceOpt, SkipBadOpt, load_data, out_dir, print_json,
                            print_table, progress_bar, split_list)
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.data import Dataset
    from zoo.plan import Plan

DEFAULT_OUT = "runs/matrix"


def matrix_cmd(models: Annotated[list[str] | None, typer.Argument(
                   help="model ids or families; or `merge RUN` to assemble a sharded run")] = None,
               all_: Annotated[bool, typer.Option("--all", help="every registered family "
                                                  "(its default model)")] = False,
               data: DataOpt = "samples", layers: LayersOpt = None,
               metric: Annotated[str, typer.Option("--metric", "-m", help="metric name")] = "cka",
               reduce: ReduceOpt = "gap", random_init: RandomInitOpt = False,
               device: DeviceOpt = "cpu", batch_size: BatchOpt = 16,
               out: Annotated[str | None, typer.Option("--out", "-o", help="output folder "
                              f"(default {DEFAULT_OUT}; for merge, the run folder)")] = None,
               skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
               json_: JsonOpt = False,
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
    from zoo.features import parse_reduction
    from zoo.plan import open_run, parse_shard, run_shard, shard_from_env
    from zoo.registry import get_registry

    if models and models[0] == "merge":
        if len(models) != 2:
            raise ZooError("usage: zoo matrix merge RUN [--out DIR]")
        _merge(Path(models[1]), out or models[1], json_)
        return
    parse_reduction(reduce)
    registry = get_registry()
    names = list(registry.families) if all_ else list(models or [])
    if len(names) < 1:
        raise ZooError("name at least one model, or pass --all")
    chosen = registry.metric(metric)
    dataset = load_data(data, skip_bad)
    plan = _make_plan(names, split_list(layers), dataset, chosen, reduce, random_init,
                      batch_size, samples_per_unit, block)
    scratch = tempfile.mkdtemp(prefix="zoo-run-") if no_cache and not run else None
    folder = Path(run or scratch or _default_run(plan))
    try:
        plan = open_run(folder, plan)
        if workers is not None:
            _spawn_workers(folder, _worker_count(workers, device), data, skip_bad, device, wait)
        else:
            k, n = parse_shard(shard) if shard else shard_from_env()
            with progress_bar() as progress:
                run_shard(plan, folder, k, n, dataset=dataset, device=_rank_device(device),
                          wait=wait, progress=progress)
            if n > 1:
                print(f"shard {k}/{n} finished its units; when every shard has, run "
                      f"`zoo matrix merge {folder}`", file=sys.stderr)
                return
        _merge(folder, out or DEFAULT_OUT, json_)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _make_plan(names: list[str], patterns: list[str] | None, dataset: Dataset, metric: Any,
               reduce: str, random_init: bool, batch_size: int, samples_per_unit: int,
               block: int) -> Plan:
    """The plan for these models: each model's layers (ordered by depth) that --layers picks."""
    from zoo.extract import layer_matches, select_layers
    from zoo.plan import make_plan
    from zoo.registry import get_registry

    chosen = []
    for name in names:
        spec = get_registry().model(name)
        infos = {i.name: i for i in spec.layers()}
        # --layers applies to every model: each uses the patterns that match its layers
        wanted = [p for p in patterns or [] if layer_matches(list(infos), p)]
        if patterns and not wanted:
            raise ZooError(f"no layer of {spec.id} matches --layers {','.join(patterns)}; "
                           f"see `zoo info {spec.id}`")
        picked = sorted((infos[n] for n in select_layers(list(infos), wanted or None, spec.id)),
                        key=lambda i: i.depth)
        chosen.append((spec.id, [i.as_dict() for i in picked]))
    data = {"name": dataset.name, "fingerprint": dataset.fingerprint, "n": len(dataset)}
    return make_plan(chosen, data, metric.name, symmetric=bool(getattr(metric, "symmetric",
                     False)), reduce=reduce, random_init=random_init, batch_size=batch_size,
                     samples_per_unit=samples_per_unit, layers_per_block=block)


def _default_run(plan: Plan) -> Path:
    """A run folder per plan in the cache, so an interrupted `zoo matrix` resumes."""
    from zoo.cache import default_root

    return default_root() / "runs" / plan.key


def _rank_device(device: str) -> str:
    """`--device cuda` under torchrun means this rank's GPU (LOCAL_RANK)."""
    local = os.environ.get("LOCAL_RANK")
    return f"cuda:{local}" if device == "cuda" and local is not None else device


def _worker_count(workers: str, device: str) -> int:
    """--workers: auto is one per visible GPU for CUDA, else one per CPU core."""
    if workers != "auto":
        if not workers.isdigit() or int(workers) < 1:
            raise ZooError(f"--workers {workers!r}: pass auto or a number >= 1")
        return int(workers)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.device_count():
            raise ZooError("--workers auto --device cuda: no GPU visible; use --device cpu")
        return torch.cuda.device_count()
    return os.cpu_count() or 1


def _spawn_workers(folder: Path, count: int, data: str, skip_bad: bool, device: str,
                   wait: float) -> None:
    """Run shards 0..count-1 as processes on this machine (GPU k for worker k with CUDA)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = []
    for k in range(count):
        dev = f"cuda:{k}" if device.startswith("cuda") else device
        procs.append(ctx.Process(target=_worker, args=(str(folder), k, count, data, skip_bad,
                                                       dev, wait)))
        procs[-1].start()
    for p in procs:
        p.join()
    failed = [k for k, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise ZooError(f"workers {failed} of {count} failed (see their messages above); rerun "
                       "the same command to resume")


def _worker(folder: str, k: int, count: int, data: str, skip_bad: bool, device: str,
            wait: float) -> None:
    """One worker process: its shard of the run; a user error ends it with one line."""
    from zoo.plan import open_run, run_shard

    try:
        if device == "cpu":
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        run_shard(open_run(folder), folder, k, count, dataset=load_data(data, skip_bad),
                  device=device, wait=wait)
    except ZooError as exc:
        print(f"zoo: error: worker {k}/{count}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _merge(run: Path, out: str, json_: bool) -> None:
    """Assemble a finished run and write matrix.csv/json/png, smoothness.png and report.html."""
    from zoo.io import write_csv, write_json
    from zoo.plan import assemble, open_run
    from zoo.registry import get_registry
    from zoo.report import heatmap_png, html_report, html_table, img_tag, profile_png

    plan = open_run(run)
    values, reasons, n = assemble(plan, run)
    cfg, info = plan.config, plan.layers
    metric, reduce, random_init = cfg["metric"], cfg["reduce"], cfg["random_init"]
    similarity = get_registry().metric(metric).kind == "similarity"
    folder = out_dir(out)
    models = cfg["models"]
    label_pairs = [(models[i["model"]], i["name"]) for i in info]
    labels = [f"{m}:{l}" for m, l in label_pairs]
    blocks = [m for m, _ in label_pairs]
    rows = [{"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1],
             "metric": metric, "value": float(values[i, j]), "n": n, "reduction": reduce,
             "reason": reasons[i, j]}
            for i, a in enumerate(label_pairs) for j, b in enumerate(label_pairs)]
    write_csv(folder / "matrix.csv", rows)
    note = " [random init]" if random_init else ""
    heatmap_png(folder / "matrix.png", values, labels, labels, blocks, blocks,
                f"{metric} across {len(models)} models{note} (n={n}, {reduce})",
                "model:layer", "model:layer")
    profiles = {}
    for m, model in enumerate(models):  # 1 - similarity (or the distance) per step
        idx = [g for g, i in enumerate(info) if i["model"] == m]
        step = np.array([values[g, h] for g, h in zip(idx, idx[1:])])
        depth = np.array([(info[g]["depth"] + info[h]["depth"]) / 2 for g, h in zip(idx, idx[1:])])
        profiles[model] = (depth, 1.0 - step if similarity else step)
    profile_png(folder / "smoothness.png", profiles, f"change between consecutive layers{note}",
                f"1 - {metric}" if similarity else metric)
    summary = {"models": models, "random_init": random_init, "metric": metric,
               "data": cfg["data"]["name"], "n": n, "reduction": reduce, "labels": labels,
               "roles": [i["role"] for i in info], "values": values, "run": str(run),
               "smoothness": {m: {"depth": d, "value": v} for m, (d, v) in profiles.items()}}
    write_json(folder / "matrix.json", summary)
    html_report(folder / "report.html", f"zoo matrix: {metric} across the zoo{note}", [
        ("Setup", html_table([{"models": ", ".join(models), "data": cfg["data"]["name"],
                               "samples": n, "reduction": reduce, "layers": len(labels)}])),
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
