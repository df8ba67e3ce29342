"""`zoo train`: binary segmentation fine-tuning of a segmentation family (UNet++, Mask2Former)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zoo.cli.common import (DataOpt, DeviceOpt, JsonOpt, RandomInitOpt, SkipBadOpt, WeightsOpt,
                            load_data, out_dir, print_json, print_table, progress_bar,
                            check_device)

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


def train_model(model_name: str, data: str, epochs: int, batch_size: int, lr: float,
                freeze_encoder: bool, loss: str, size: int | None, tag: str,
                weights: str | None, random_init: bool, device: str, options: dict[str, Any],
                default: bool = False, skip_bad: bool = False) -> tuple[Any, Any, Any]:
    """Load, fine-tune and save one model; returns (model, TrainResult, checkpoint folder)."""
    from zoo.cache import default_root
    from zoo.registry import get_registry
    from zoo.train import save_checkpoint, train_segmenter

    spec = get_registry().model(model_name)
    if size:
        options = {**options, "size": size}
    model = spec.load(weights=weights, random_init=random_init, device=check_device(device),
                      **options)
    dataset = load_data(data, skip_bad)
    with progress_bar() as progress:
        result = train_segmenter(model, dataset, epochs, batch_size, lr, freeze_encoder, loss,
                                 progress=progress)
    folder = save_checkpoint(model, spec.id, tag, options, result, default_root(), dataset.name,
                             default=default)
    return model, result, folder


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
              size: Annotated[int | None, typer.Option(help="input size in px (study: 128)")]
              = None,
              tag: Annotated[str, typer.Option(help="tag of the saved checkpoint: it loads as "
                                               "MODEL.TAG")] = "finetuned",
              weights: WeightsOpt = None, random_init: RandomInitOpt = False,
              device: DeviceOpt = "cpu", option: OptionsOpt = None,
              out: Annotated[str | None, typer.Option("--out", "-o", help="also write "
                             "train_metrics.json here")] = None,
              skip_bad: SkipBadOpt = False, json_: JsonOpt = False) -> None:
    """Fine-tune a segmentation model on a binary task (train/validation/test splits)."""
    from zoo.io import write_json

    zmodel, result, folder = train_model(model, data, epochs, batch_size, lr, freeze_encoder,
                                         loss, size, tag, weights, random_init, device,
                                         parse_options(option), skip_bad=skip_bad)
    summary = {"model": f"{zmodel.spec.id}", "checkpoint": str(folder),
               "loads_as": f"{zmodel.spec.id}.{tag}", **result.as_dict()}
    if out:
        write_json(out_dir(out) / "train_metrics.json", summary)
    if json_:
        print_json(summary)
        return
    print_metrics({zmodel.spec.id: result.metrics})
    print(f"checkpoint: {folder} (use it as `{zmodel.spec.id}.{tag}`)")


def print_metrics(metrics: dict[str, dict[str, dict[str, float]]]) -> None:
    """IoU, Dice and pixel accuracy per model and split ({model: {split: metrics}})."""
    rows = [[name, split, m["images"], m["iou"], m["dice"], m["pixel_accuracy"]]
            for name, splits in metrics.items() for split, m in splits.items()]
    print_table("segmentation metrics (per-image means; best epoch chosen on validation)",
                ["model", "split", "images", "IoU", "Dice", "pixel acc"], rows)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
