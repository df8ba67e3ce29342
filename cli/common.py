"""Options and printing shared by the command groups; all behaviour is in the library."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zoo.cli.tables import print_table
from zoo.errors import ZooError
from zoo.model.selection import split_names as split_list

if TYPE_CHECKING:
    from zoo.data.dataset import Dataset

DataOpt = Annotated[str, typer.Option("--data", "-d", help="dataset name (samples, synthetic:N, "
                                      "lesions:N, isic:PATH) or an image folder")]
WeightsOpt = Annotated[str | None, typer.Option("--weights", "-w", help="local weights file or "
                                                "folder (.pth/.pt/.bin/.safetensors, HF folder)")]
ModelWeightsOpt = Annotated[list[str] | None, typer.Option(
    "--weights", "-w", help="MODEL=PATH, repeated: local weights for that model")]
RandomInitOpt = Annotated[bool, typer.Option("--random-init", help="use random weights (fixed "
                                             "seed) when no real weights are at hand")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N")]
ReduceOpt = Annotated[str, typer.Option("--reduction", "--reduce", "-r",
                                        help="gap, cls, grid:K, positions:K, "
                                        "flatten (none keeps the full layout)")]
LayersOpt = Annotated[list[str] | None, typer.Option(
    "--layers", "-l", help="layer names or globs, comma-separated or repeated; MODEL=GLOB "
    "applies to one model only")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="images per forward")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="skip unreadable images (counted "
                                          "and named) instead of stopping")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="neither read nor write the "
                                          "feature cache")]
ModelsArg = Annotated[list[str], typer.Argument(help="model ids or families")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="output folder (default: a "
                                            "new one under runs/)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of every random choice")]
DimOpt = Annotated[int, typer.Option("--dim", min=2, help="width of the shared channel space")]
SizeOpt = Annotated[int | None, typer.Option(
    "--size", min=1, help="input size in px (default: the checkpoint's; a multiple of the patch "
    "for ViTs, of 32 for unetpp/mask2former); recorded in the cache key and provenance")]
CropPctOpt = Annotated[float | None, typer.Option(
    "--crop-pct", min=0.01, max=1.0, help="centre-crop fraction: resize the short side to "
    "size / crop_pct, then crop size (default: the checkpoint's, e.g. 0.875 for Resize 256 / "
    "CenterCrop 224)")]
WeightsSourceOpt = Annotated[str | None, typer.Option(
    "--weights-source", help="which cached weights to use when several are found: text of its "
    "entry, e.g. 'torch hub' or 'facebook/dinov2-base' (`zoo info` lists them)")]
TrustWeightsOpt = Annotated[bool, typer.Option(
    "--trust-weights", help="allow full unpickling of a torch.save file that pickles more than "
    "tensors and plain values; runs code from the file: only for files you trust")]


OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace an existing --out "
                                            "folder (default: refuse)")]
LoaderWorkersOpt = Annotated[int, typer.Option(
    "--loader-workers", min=0, help="processes that decode and preprocess images while the "
    "model runs (0: in the main process)")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="forward precision: fp32 (exact, default), or bf16 / fp16 autocast "
    "(cached apart)")]


REASONS_SHOWN = 3  # distinct undefined-value reasons printed per metric


def per_model(values: list[str] | None, models: list[str],
              option: str) -> dict[str, list[str] | None]:
    """`--layers` items for each model: `MODEL=GLOB` for one model, a bare item for all."""
    out: dict[str, list[str] | None] = {m: None for m in models}
    for item in split_list(values) or []:
        model, sep, value = item.partition("=")
        targets = [model] if sep else models
        if sep and model not in out:
            raise ZooError(f"{option} {item!r}: {model!r} is not one of {', '.join(models)}")
        for m in targets:
            out[m] = (out[m] or []) + [value if sep else item]
    return out


def model_weights(values: list[str] | None, models: list[str]) -> dict[str, str]:
    """`--weights MODEL=PATH` items as {model: path}; a bare path needs exactly one model. An
    empty item, model or path, or one model given two paths, is an error (never dropped)."""
    out: dict[str, str] = {}
    for item in values or []:
        model, sep, path = item.partition("=")
        if not item.strip():
            raise ZooError("--weights '': empty; write MODEL=PATH")
        if not sep:
            if len(models) != 1:
                raise ZooError(f"--weights {item!r}: write MODEL=PATH when several models "
                               "are given")
            model, path = models[0], item
        if not model:
            raise ZooError(f"--weights {item!r}: names no model; write MODEL=PATH")
        if not path:
            raise ZooError(f"--weights {item!r}: empty path; write MODEL=PATH")
        if model not in models:
            raise ZooError(f"--weights {item!r}: {model!r} is not one of {', '.join(models)}")
        if out.get(model, path) != path:
            raise ZooError(f"--weights: {model} given twice ({out[model]!r} and {path!r}); "
                           "pass one path per model")
        out[model] = path
    return out


def load_options(size: int | None = None, crop_pct: float | None = None,
                 source: str | None = None, trust: bool = False) -> dict[str, Any]:
    """The options given, as load options (`spec.load(**options)`), leaving out the unset ones."""
    options = {"size": size, "crop_pct": crop_pct, "source": source,
               "trust_weights": trust or None}
    return {k: v for k, v in options.items() if v is not None}


def load_data(data: str, skip_bad: bool = False) -> Dataset:
    """`zoo.dataset`, saying on stderr which images and folders `--skip-bad` dropped."""
    from zoo.api import dataset

    opened = dataset(data, skip_bad=skip_bad)
    if opened.skipped:
        print(f"zoo: skipped {len(opened.skipped)} unreadable images: "
              f"{', '.join(opened.skipped[:5])}" + (" ..." if len(opened.skipped) > 5 else ""),
              file=sys.stderr)
    return opened


def out_folder(out: str | None, kind: str, names: list[str], options: dict[str, Any],
               overwrite: bool = False) -> Path:
    """`--out` (checked before any work), or a new default folder for this run (see
    `zoo.report.runs.default_folder`)."""
    from zoo.io import check_output_folder
    from zoo.report.runs import default_folder

    return check_output_folder(out, overwrite) if out else default_folder(kind, names, options)


def provenance_lines(p: dict[str, Any]) -> str:
    """A model's provenance (`ZooModel.provenance()`) as indented lines."""
    from zoo.model.base import provenance_text

    return "\n".join("  " + line for line in provenance_text(p).splitlines())


def print_json(obj: Any) -> None:
    """JSON on stdout (NaN as null)."""
    from zoo.io import to_jsonable

    print(json.dumps(to_jsonable(obj), indent=2))


def print_comparison(c: Any) -> None:
    """Provenance, role summaries for every metric and best matches for the first."""
    print(f"{c.a.label} vs {c.b.label} on {c.data}: n={c.n}, {c.reduction}, "
          f"{len(c.a.layers)} x {len(c.b.layers)} layers")
    for fs in (c.a, c.b):
        print(provenance_lines(fs.provenance))
    summaries = [s for name in c.results for s in c.role_summary(name)]
    tested = any("p_mean_adjusted" in s for s in summaries)
    rows = [[s["metric"], s["role_a"], s["role_b"], s["mean"], s["max"], s["undefined"] or ""]
            + ([s.get("p_mean_adjusted")] if tested else []) for s in summaries]
    print_table("summary by role (mean / max over layer pairs; n/a: undefined"
                + ("; p: the mean against the permutation null's means, BH-adjusted"
                   if tested else "") + ")",
                ["metric", "role A", "role B", "mean", "max", "undefined"]
                + (["p mean"] if tested else []), rows)
    first = c.metrics[0]
    matches = c.best_match_rows(first)
    with_p = any("p_best_adjusted" in m for m in matches)
    print_table(f"best match in {c.b.label} for each layer of {c.a.label} ({first}"
                + ("; p: the best value against the null's best over B's layers, "
                   "Benjamini-Hochberg-adjusted; calibrated: beyond the null's 95% critical "
                   "value" if with_p else "") + ")",
                ["layer A", "role", "best layer B", "role", first]
                + (["calibrated", "p"] if with_p else []),
                [[m["layer_a"], m["role_a"], m["best_b"] or m["reason"], m["role_b"],
                  m["value"]] + ([m.get("calibrated"), m.get("p_best_adjusted")]
                                 if with_p else []) for m in matches])
    for name, r in c.results.items():
        reasons = list(r.reason_counts().items())
        for why, count in reasons[:REASONS_SHOWN]:  # reasons may name the metric already
            print(f"  {name}: {count} undefined: {why.removeprefix(f'{name}: ')}")
        if len(reasons) > REASONS_SHOWN:
            rest = sum(count for _, count in reasons[REASONS_SHOWN:])
            print(f"  {name}: {rest} more undefined, for {len(reasons) - REASONS_SHOWN} other "
                  "reasons (all in report.html and results.csv)")
        for note in r.notes:
            print(f"  {name}: {note}")
    for note in c.baseline_notes(first) + c.caveats(first):
        print(f"  {first}: {note}")


def print_metrics(metrics: dict[str, dict[str, dict[str, float]]]) -> None:
    """IoU, Dice and pixel accuracy per model and split ({model: {split: metrics}})."""
    rows = [[name, split, m["images"], m["iou"], m["dice"], m["pixel_accuracy"]]
            for name, splits in metrics.items() for split, m in splits.items()]
    print_table("segmentation metrics (per-image means; best epoch chosen on validation)",
                ["model", "split", "images", "IoU", "Dice", "pixel acc"], rows)


@contextlib.contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A `progress(task, done, total)` callback: rich bars on a terminal (each removed when
    its task finishes), else one stderr line per task when it starts and ends (and at most
    every 10 s in between)."""
    if not sys.stderr.isatty():
        yield _line_progress()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        def update(task: str, done: int, total: int) -> None:  # a finished bar is removed
            if task not in tasks:
                tasks[task] = bar.add_task(escape(task), total=total)
            bar.update(tasks[task], completed=done, total=total)
            if done >= total:
                bar.remove_task(tasks.pop(task))

        yield update


def _line_progress() -> Callable[[str, int, int], None]:
    last: dict[str, float] = {}

    def update(task: str, done: int, total: int) -> None:
        now = time.monotonic()
        if task not in last or done >= total or now - last[task] >= 10:
            last[task] = now
            print(f"zoo: {task}: {done}/{total}", file=sys.stderr, flush=True)

    return update
