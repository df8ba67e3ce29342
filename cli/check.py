"""`zoo check MODEL`: build a model (random init by default), run one batch, check its layers."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import (
    DeviceOpt,
    JsonOpt,
    SizeOpt,
    TrustWeightsOpt,
    WeightsOpt,
    load_options,
    print_json,
    print_table,
)


def check_cmd(model: Annotated[str, typer.Argument(help="model id, e.g. timm/convnext_tiny")],
              weights: WeightsOpt = None, device: DeviceOpt = "cpu", size: SizeOpt = None,
              batch: Annotated[int, typer.Option("--batch", min=1, help="images in the probe "
                                                 "batch")] = 2,
              trust_weights: TrustWeightsOpt = False, json_: JsonOpt = False) -> None:
    """Check MODEL against zoo's contract: declared layouts, channels, strides, prefix tokens and
    grids against one batch, determinism, and equality with the library's intermediates API.
    Random init unless --weights; exits 1 when a check fails."""
    from zoo.api import load
    from zoo.model.conformance import check_model
    from zoo.model.loading import check_device

    zmodel = load(model, weights=weights, random_init=not weights, device=check_device(device),
                  **load_options(size, trust=trust_weights))
    report = check_model(zmodel, batch=batch)
    if json_:
        print_json({"model": report.model, "ok": report.ok, "extraction": report.extraction,
                    "size": report.size, "layers": report.rows(),
                    "problems": report.failures()})
    else:
        columns = ["layer", "layout", "shape", "channels", "stride", "grid", "upstream", "status"]
        print_table(f"{report.model}: {len(report.layers)} layers at {report.size} px by "
                    f"{report.extraction}", columns,
                    [[r[c] for c in columns] for r in report.rows()])
        print(f"{'PASS' if report.ok else 'FAIL'}: {len(report.failures())} problems"
              + "".join(f"\n  {p}" for p in report.model_problems))
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
