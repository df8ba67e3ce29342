"""Options and helpers shared by the command groups: model/data loading, output, progress."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.data import Dataset
    from zoo.model import ZooModel

DataOpt = Annotated[str, typer.Option("--data", "-d", help="dataset name (samples, synthetic:N, "
                                      "isic:PATH) or an image folder")]
WeightsOpt = Annotated[str | None, typer.Option("--weights", "-w", help="local weights file or "
                                                "folder (.pth/.pt/.bin/.safetensors, HF folder)")]
RandomInitOpt = Annotated[bool, typer.Option("--random-init", help="use random weights (fixed "
                                             "seed) when no real weights are at hand")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N")]
ReduceOpt = Annotated[str, typer.Option("--reduce", "-r", help="gap, cls, grid:K, positions:K, "
                                        "flatten (none keeps the full layout)")]
LayersOpt = Annotated[list[str] | None, typer.Option("--layers", "-l", help="layer names or glob "
                                                     "patterns, comma-separated or repeated")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="images per forward")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="skip unreadable images (counted) "
                                          "instead of stopping")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="neither read nor write the "
                                          "feature cache")]


def split_list(values: list[str] | None) -> list[str] | None:
    """`["a,b", "c"]` -> `["a", "b", "c"]`; None stays None."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def slug(text: str) -> str:
    """A model id or label as a safe file-name part (`unetpp/resnet34` -> `unetpp-resnet34`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def check_device(device: str) -> str:
    """Validate --device early, with the way out when CUDA is missing."""
    if device == "cpu":
        return device
    if not (device == "cuda" or device.startswith("cuda:")):
        raise ZooError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise ZooError(f"--device {device}: CUDA is not available here; use --device cpu")
    return device


def load_model(name: str, weights: str | None = None, random_init: bool = False,
               device: str = "cpu") -> ZooModel:
    """Resolve a model id and load it, with weights or (explicitly) random init."""
    from zoo.registry import get_registry

    spec = get_registry().model(name, prefer_trained=not (weights or random_init))
    if weights and random_init:
        raise ZooError("--weights and --random-init exclude each other; pass one")
    if weights and not Path(weights).expanduser().exists():
        raise ZooError(f"--weights {weights!r} does not exist")
    return spec.load(weights=weights, random_init=random_init, device=check_device(device))


def load_data(data: str, skip_bad: bool = False) -> Dataset:
    """Open `--data`; with `skip_bad`, drop unreadable images and say how many."""
    from zoo.data import open_dataset

    dataset = open_dataset(data)
    if skip_bad:
        dataset = dataset.without_unreadable()
        if dataset.skipped:
            print(f"zoo: skipped {len(dataset.skipped)} unreadable images "
                  f"(e.g. {dataset.skipped[:3]})", file=sys.stderr)
        if not len(dataset):
            raise ZooError(f"no readable images in {data}")
    return dataset


def out_dir(path: str | Path) -> Path:
    """Create the output folder (or fail clearly when it is a file)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ZooError(f"--out {str(path)!r} is a file; pass a folder")
    p.mkdir(parents=True, exist_ok=True)
    return p


def print_json(obj: Any) -> None:
    """JSON on stdout (NaN as null)."""
    from zoo.io import to_jsonable

    print(json.dumps(to_jsonable(obj), indent=2))


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    Console(width=max(120, Console().width)).print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4f}"
    return str(v)


@contextlib.contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None] | None]:
    """A `progress(task, done, total)` callback drawing rich bars on a terminal, else None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeRemainingColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=False) as bar:
        def update(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        yield update
