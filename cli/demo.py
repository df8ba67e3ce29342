"""`zoo demo` (what `make demo` runs): the UNet++ vs Mask2Former study on the embedded lesion set.

Trains small UNet++ and Mask2Former models on the synthetic lesion set when their `.demo`
checkpoints are not in the cache yet, reports their test metrics, then compares their layers on
the held-out test images. A second run reuses the checkpoints and the cached features.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zoo.cli.common import DeviceOpt, out_dir

DATA = "lesions:240"
TAG = "demo"
# Small configurations of the study's two models that train on 2 CPU cores in minutes.
# Keyed by the base model id (a bare family would resolve to the trained default itself).
MODELS: dict[str, dict[str, Any]] = {
    "unetpp/resnet34": {"options": {"tiny": True, "size": 64}, "epochs": 10, "lr": 3e-3},
    "mask2former/swin-base.ade-semantic": {"options": {"tiny": True, "size": 64}, "epochs": 5, "lr": 1e-3},
}
METRICS = "cka,cka-debiased,cka-rbf,svcca,rsa"


def demo_cmd(out: Annotated[str, typer.Option("--out", "-o", help="output folder")] = "runs/demo",
             retrain: Annotated[bool, typer.Option("--retrain", help="train again even if the "
                                                   "demo checkpoints exist")] = False,
             permutations: Annotated[int, typer.Option(min=0, help="permutation draws for "
                                                       "p-values")] = 50,
             device: DeviceOpt = "cpu") -> None:
    """Train (once) and compare UNet++ and Mask2Former on the synthetic lesion set."""
    from zoo.cache import FeatureCache, default_root
    from zoo.cli.compare import print_comparison, resolve_metrics, run_compare
    from zoo.cli.train import print_metrics, train_model
    from zoo.data import open_dataset
    from zoo.io import write_json
    from zoo.registry import get_registry, reset_registry
    from zoo.report import html_table
    from zoo.segmentation import split_indices
    from zoo.train import checkpoint_dir, read_checkpoint_meta

    folder = out_dir(out)
    registry = get_registry()
    for base_id, cfg in MODELS.items():
        trained_id = f"{base_id}.{TAG}"
        if trained_id in registry.models and not retrain:
            print(f"{trained_id}: reusing the trained checkpoint ({registry.models[trained_id].weights})")
            continue
        print(f"{trained_id}: training on {DATA} ({cfg['epochs']} epochs, options "
              f"{cfg['options']}) ...")
        train_model(base_id, DATA, cfg["epochs"], 8, cfg["lr"], False, "bce-dice", None, TAG,
                    None, True, device, cfg["options"], default=True)
    reset_registry()  # pick up the checkpoints just written
    registry = get_registry()
    za, zb = (registry.model(f"{base_id}.{TAG}").load(device=device) for base_id in MODELS)
    train_metrics = {m.id: read_checkpoint_meta(checkpoint_dir(default_root(), m.id))["train"]
                     for m in (za, zb)}
    write_json(folder / "train_metrics.json", train_metrics)
    rows = [{"model": mid, "split": split, **vals} for mid, meta in train_metrics.items()
            for split, vals in meta["metrics"].items()]
    dataset = open_dataset(DATA)
    held_out = dataset.subset(split_indices(dataset.ids)["test"], name=f"{dataset.name} test split")
    section = ("Segmentation metrics (per-image means; epoch chosen on validation, test scored "
               "once)", html_table(rows, ["model", "split", "images", "iou", "dice",
                                          "pixel_accuracy"]))
    comparison, _ = run_compare(za, zb, held_out, None, None, resolve_metrics([METRICS]), "gap",
                                permutations, 0, device, 16, folder, 4, FeatureCache(),
                                [section])
    print_metrics({mid: meta["metrics"] for mid, meta in train_metrics.items()})
    print_comparison(comparison)
    print(f"\nreport: {folder / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
