"""`zoo validate`: train the validation suite and score every metric (see zoo.study.validation)."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import (
    DeviceOpt,
    JsonOpt,
    OverwriteOpt,
    out_folder,
    print_json,
    print_table,
    progress_bar,
    split_list,
)

MetricsOpt = Annotated[list[str] | None, typer.Option("--metric", "-m", help="metric names, "
                       "comma-separated or repeated (default: every representation metric)")]


def validate_cmd(quick: Annotated[bool, typer.Option(
                     "--quick/--full", help="quick: 5 seeds of 6-layer CNNs on 8 px gratings "
                     "(CPU minutes); full: 10 seeds of 10-layer CNNs on 32 px (a GPU)")] = True,
                 metric: MetricsOpt = None,
                 seeds: Annotated[int | None, typer.Option(min=2, help="normal networks "
                                                           "(default 5 quick, 10 full)")] = None,
                 threads: Annotated[int, typer.Option(min=1, help="torch/BLAS threads")] = 1,
                 device: DeviceOpt = "cpu",
                 out: Annotated[str | None, typer.Option("--out", "-o", help="output folder "
                                                         "(default: a new runs/validate-...)")
                                ] = None,
                 overwrite: OverwriteOpt = False, json_: JsonOpt = False) -> None:
    """Which measure to trust: layer identification across seeds, monotonicity, design-group
    separation and correlation with output differences, per metric."""
    from zoo.model.loading import check_device
    from zoo.study.validation import validate

    setting = "quick" if quick else "full"
    names = split_list(metric) or None
    folder = out_folder(out, "validate", [setting], {"metrics": names, "seeds": seeds},
                        overwrite)
    with progress_bar() as progress:
        result = validate(names, setting=setting, seeds=seeds, device=check_device(device),
                          threads=threads, progress=progress)
    result.save(folder, overwrite=overwrite)
    if json_:
        print_json({"settings": result.settings, "rows": result.rows, "out": str(folder)})
        return
    s = result.settings
    print("networks: " + ", ".join(f"{n.design}/{n.seed} acc {n.accuracy:.2f}"
                                   for n in result.networks))
    print_table(f"zoo validate ({setting}): {s['seeds']} seeds, {len(s['layers'])} layers "
                f"(chance {s['chance_layer_identification']:.2f}), n = {s['eval']}; AUPRC "
                f"chance {s['chance_auprc']:.2f}",
                ["metric", "layer id", "Kornblith 2019", "monotonicity viol.", "AUPRC rand-lab",
                 "AUPRC shortcut", "AUPRC noise", "rho output"],
                [[r["metric"], r["layer_identification"], r["kornblith_2019"],
                  r["monotonicity_violations"], r["auprc_random-labels"], r["auprc_shortcut"],
                  r["auprc_noise"], r["rho_output"]] for r in result.rows])
    print(f"\ntable and figure: {folder}")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)
