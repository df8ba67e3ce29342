"""`zoo train`: binary segmentation fine-tuning of a segmentation family (UNet++, Mask2Former)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from zoo.cli.common import (
    DataOpt,
    DeviceOpt,
    JsonOpt,
    RandomInitOpt,
    SkipBadOpt,
    TrustWeightsOpt,
    WeightsOpt,
    load_data,
    load_options,
    print_json,
    print_metrics,
    progress_bar,
)

OptionsOpt = Annotated[list[str] | None, typer.Option("--option", help="model build option "
                       "KEY=VALUE passed to the family loader (e.g. small=true), repeatable")]


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`["small=true", "width=32"]` -> {"small": True, "width": 32}."""
    import json

    from zoo.errors import ZooError

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ZooError(f"--option {pair!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def train_cmd(model: Annotated[str, typer.Argument(help="unetpp or mask2former (id or family)")],
              data: DataOpt = "lesions",
              epochs: Annotated[int, typer.Option(min=1, help="training epochs")] = 10,
              batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 8,
              lr: Annotated[float, typer.Option(help="peak learning rate (one-cycle)")] = 1e-3,
              freeze_encoder: Annotated[bool, typer.Option(
                  "--freeze-encoder", help="train only the decoder (backbone and its norm "
                  "statistics frozen)")] = False,
              loss: Annotated[str, typer.Option(help="bce-dice, scaled-dice, bce or dice")]
              = "bce-dice",
              size: Annotated[int | None, typer.Option(min=1, help="input size in px "
                                                       "(study: 128)")] = None,
              tag: Annotated[str, typer.Option(help="tag of the saved checkpoint: it loads as "
                                               "MODEL.TAG")] = "finetuned",
              weights: WeightsOpt = None, random_init: RandomInitOpt = False,
              trust_weights: TrustWeightsOpt = False,
              device: DeviceOpt = "cpu", option: OptionsOpt = None,
              out: Annotated[str | None, typer.Option("--out", "-o", help="also write "
                             "train_metrics.json here")] = None,
              skip_bad: SkipBadOpt = False, json_: JsonOpt = False) -> None:
    """Fine-tune a segmentation model on a binary task (train/validation/test splits)."""
    from zoo.errors import ZooError
    from zoo.io import write_json
    from zoo.study.train import train_and_save

    if not lr > 0:
        raise ZooError(f"--lr {lr}: the learning rate must be > 0 (e.g. 1e-3)")
    with progress_bar() as progress:
        zmodel, result, folder = train_and_save(
            model, load_data(data, skip_bad), epochs, batch_size, lr, freeze_encoder, loss,
            size=size, tag=tag, weights=weights, random_init=random_init, device=device,
            options={**parse_options(option), **load_options(trust=trust_weights)},
            progress=progress)
    summary = {"model": f"{zmodel.spec.id}", "checkpoint": str(folder),
               "loads_as": f"{zmodel.spec.id}.{tag}", **result.as_dict()}
    if out:
        write_json(Path(out).expanduser() / "train_metrics.json", summary)
    if json_:
        print_json(summary)
        return
    print_metrics({zmodel.spec.id: result.metrics})
    print(f"checkpoint: {folder} (use it as `{zmodel.spec.id}.{tag}`)")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
