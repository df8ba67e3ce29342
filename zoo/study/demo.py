"""The demo study (what `make demo` runs): UNet++ vs Mask2Former on the embedded lesion set.

Trains small UNet++ and Mask2Former models on the synthetic lesion set when their `.demo`
checkpoints are not in the cache yet, then compares their layers on the held-out test images
(`lesions:test`, so `zoo compare unetpp mask2former --data lesions:test` gives the same numbers).
A second run reuses the checkpoints and the cached features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.comparisons.comparison import Comparison
    from zoo.progress import Progress

DATA = "lesions"  # 240 images; the models are trained on its train split
TEST = "lesions:test"  # its held-out split: `zoo compare unetpp mask2former --data lesions:test`
TAG = "demo"
# Small configurations of the study's two models that train on 2 CPU cores in minutes, saved
# under ids that say what they are (`arch`): the base model's reduced `tiny` build. Keyed by
# the base model id (a bare family would resolve to the trained default itself).
MODELS: dict[str, dict[str, Any]] = {
    "unetpp/resnet34": {"options": {"tiny": True, "size": 64}, "epochs": 10, "lr": 3e-3,
                        "arch": "resnet18-tiny",
                        "description": "UNet++, ResNet-18 encoder, narrow decoder, 64 px"},
    "mask2former/swin-base.ade-semantic": {
        "options": {"tiny": True, "size": 64}, "epochs": 5, "lr": 1e-3, "arch": "swin-w16",
        "description": "Mask2Former, width-16 Swin (2-2-2-2), 8 queries, 3 decoder layers, "
                       "64 px"},
}
METRICS = "cka,cka-debiased,cka-rbf,svcca,rsa"


def demo_id(base_id: str) -> str:
    """The id the demo's checkpoint of `base_id` is saved under (`unetpp/resnet18-tiny.demo`)."""
    return f"{base_id.split('/')[0]}/{MODELS[base_id]['arch']}.{TAG}"


def run_demo(retrain: bool = False, permutations: int = 50, device: str = "cpu",
             say: Callable[[str], None] = lambda _: None,
             progress: Progress | None = None) -> tuple[Comparison, dict[str, Any]]:
    """Train (once) both models, then compare them on the test split; returns the comparison
    (with a segmentation-metrics section) and {model id: training summary}."""
    from zoo.comparisons.comparison import compare_models
    from zoo.data.resolve import as_dataset
    from zoo.features.cache import FeatureCache
    from zoo.io import cache_root
    from zoo.registry.host import get_registry, reset_registry
    from zoo.report.figures import html_table
    from zoo.study.train import checkpoint_dir, read_checkpoint_meta, train_and_save

    registry = get_registry()
    for base_id, cfg in MODELS.items():
        trained_id = demo_id(base_id)
        if trained_id in registry.models and not retrain:
            say(f"{trained_id}: reusing the trained checkpoint "
                f"({registry.models[trained_id].weights})")
            continue
        say(f"{trained_id}: training {cfg['description']} on {DATA} ({cfg['epochs']} "
            "epochs) ...")
        train_and_save(base_id, DATA, cfg["epochs"], 8, cfg["lr"], tag=TAG, random_init=True,
                       device=device, options=cfg["options"], default=True, progress=progress,
                       arch=cfg["arch"], description=cfg["description"])
    reset_registry()  # pick up the checkpoints just written
    registry = get_registry()
    za, zb = (registry.model(demo_id(base_id)).load(device=device) for base_id in MODELS)
    train = {m.id: read_checkpoint_meta(checkpoint_dir(cache_root(), m.id))["train"]
             for m in (za, zb)}
    rows = [{"model": mid, "split": split, **vals} for mid, meta in train.items()
            for split, vals in meta["metrics"].items()]
    comparison = compare_models(za, zb, as_dataset(TEST), METRICS, permutations=permutations,
                                images=4, device=device, cache=FeatureCache(),
                                progress=progress)
    comparison.sections.append((
        "Segmentation metrics (per-image means; epoch chosen on validation, test scored once)",
        html_table(rows, ["model", "split", "images", "iou", "dice", "pixel_accuracy"])))
    return comparison, train
