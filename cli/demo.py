"""`zoo demo` (what `make demo` runs): the UNet++ vs Mask2Former study on the embedded lesion
set (see `zoo.study.demo`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from zoo.cli.common import DeviceOpt, print_comparison, print_metrics, progress_bar


def demo_cmd(out: Annotated[str, typer.Option("--out", "-o", help="output folder (replaced "
                                              "by each run)")] = "runs/demo",
             retrain: Annotated[bool, typer.Option("--retrain", help="train again even if the "
                                                   "demo checkpoints exist")] = False,
             permutations: Annotated[int, typer.Option(min=0, help="permutation draws for "
                                                       "p-values")] = 50,
             device: DeviceOpt = "cpu") -> None:
    """Train (once) and compare UNet++ and Mask2Former on the synthetic lesion set."""
    from zoo.study.demo import pin_kernels

    pinned = pin_kernels()  # first: torch must load after the pins
    from zoo.io import write_json
    from zoo.model.loading import check_device
    from zoo.study.demo import demo_results, run_demo

    if not pinned:
        print("zoo: warning: torch loaded before the demo could pin its kernels; numbers may "
              "differ from other machines'", file=sys.stderr)
    with progress_bar() as progress:
        comparison, train = run_demo(retrain, permutations, check_device(device),
                                     say=lambda line: print(line, flush=True),
                                     progress=progress)
    comparison.save(out, overwrite=True)
    write_json(f"{out}/train_metrics.json", train)
    write_json(f"{out}/demo_results.json", demo_results(comparison, train, permutations))
    print_metrics({mid: meta["metrics"] for mid, meta in train.items()})
    print_comparison(comparison)
    print(f"\nreport: {out}/report.html; the README's numbers: {out}/demo_results.json")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
