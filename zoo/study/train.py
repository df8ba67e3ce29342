"""Binary segmentation fine-tuning for the segmentation families (the UNet++ vs Mask2Former study).

A segmentation model is a `ZooModel` with three methods (see `Segmenter`); the loop here selects
the epoch by validation Dice and scores the test split once, at the end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from zoo.data.sources import split_indices
from zoo.errors import ZooError
from zoo.study.segmentation import LOSSES, mean_metrics

if TYPE_CHECKING:
    import torch

    from zoo.data.dataset import Dataset
    from zoo.progress import Progress


class Segmenter(Protocol):
    """What a family's model offers for binary segmentation."""

    def segmentation_loss(self, x: torch.Tensor, masks: torch.Tensor, kind: str) -> torch.Tensor:
        """Training loss for a batch and its (N, H, W) binary masks."""

    def segmentation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W) foreground logits at input resolution (semantic inference)."""

    def set_trainable(self, freeze_encoder: bool) -> list[torch.nn.Parameter]:
        """Put the module in train mode, frozen parts (and their norm statistics) in eval mode;
        return the parameters to optimise."""


@dataclass
class TrainResult:
    """What `train_segmenter` reports: metrics per split, the epoch chosen, the history."""

    metrics: dict[str, dict[str, float]]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "best_epoch": self.best_epoch, "history": self.history,
                "seconds": self.seconds, "splits": self.splits}


def _tensors(model: Any, dataset: Dataset, indices: list[int]) -> tuple[Any, Any]:
    """Preprocessed images and masks resized (nearest) to the model's input size."""
    import torch
    from PIL import Image

    size = model.input.size
    x = model.preprocess([dataset.image(i) for i in indices])
    masks = np.stack([np.asarray(Image.fromarray(dataset.mask(i)).resize((size, size),
                                                                         Image.NEAREST))
                      for i in indices])
    return x, torch.from_numpy(masks.astype(np.float32))


def predict_masks(model: Any, x: Any, batch_size: int = 16) -> np.ndarray:
    """Binary predictions (N, H, W) at threshold 0.5 on sigmoid(logits), in eval mode."""
    import torch

    model.module.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            outs.append((model.segmentation_logits(x[s:s + batch_size].to(model.device)) > 0)
                        .cpu().numpy())
    return np.concatenate(outs)


def train_segmenter(model: Any, dataset: Dataset, epochs: int = 10, batch_size: int = 8,
                    lr: float = 1e-3, freeze_encoder: bool = False, loss: str = "bce-dice",
                    patience: int = 5, seed: int = 0,
                    progress: Progress | None = None) -> TrainResult:
    """Fine-tune `model` in place on `dataset` (must have masks); keep the best validation epoch."""
    import torch

    for method in ("segmentation_loss", "segmentation_logits", "set_trainable"):
        if not hasattr(model, method):
            raise ZooError(f"{model.id} is not a segmentation model; `zoo train` supports the "
                           "segmentation families (unetpp, mask2former)")
    if not dataset.has_masks:
        raise ZooError(f"dataset {dataset.name} has no masks; use lesions, isic:PATH or synthetic")
    if loss not in LOSSES:
        raise ZooError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    splits = split_indices(dataset.ids, seed=seed)
    if min(len(v) for v in splits.values()) == 0:
        raise ZooError(f"dataset {dataset.name} is too small to split into train/validation/test")
    torch.manual_seed(seed)
    data = {k: _tensors(model, dataset, v) for k, v in splits.items()}
    params = model.set_trainable(freeze_encoder)
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    # drop the last incomplete batch (a batch of one breaks batch norm), as loaders do
    steps_per_epoch = max(1, len(splits["train"]) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=epochs *
                                                   steps_per_epoch, pct_start=0.15)
    rng = np.random.default_rng(seed)
    best = (-1.0, -1, None)
    history: list[dict[str, float]] = []
    start = time.time()
    for epoch in range(epochs):
        model.set_trainable(freeze_encoder)
        order = rng.permutation(len(splits["train"]))
        losses = []
        for step in range(steps_per_epoch):
            idx = torch.from_numpy(order[step * batch_size:(step + 1) * batch_size])
            x, y = data["train"][0][idx].to(model.device), data["train"][1][idx].to(model.device)
            optimiser.zero_grad()
            value = model.segmentation_loss(x, y, loss)
            value.backward()
            optimiser.step()
            schedule.step()
            losses.append(value.item())
            if progress:
                progress(f"train {model.id}", epoch * steps_per_epoch + step + 1,
                         epochs * steps_per_epoch)
        val = mean_metrics(predict_masks(model, data["validation"][0]),
                           data["validation"][1].numpy())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                        "val_dice": val["dice"], "val_iou": val["iou"]})
        if val["dice"] > best[0]:
            state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
            best = (val["dice"], epoch, state)
        elif epoch - best[1] >= patience:
            break
    model.module.load_state_dict(best[2])
    model.module.eval()
    metrics = {k: mean_metrics(predict_masks(model, x), y.numpy()) for k, (x, y) in data.items()}
    return TrainResult(metrics, best[1], history, time.time() - start,
                       {k: len(v) for k, v in splits.items()})


def checkpoint_dir(root: Path, model_id: str) -> Path:
    """Where a trained checkpoint of `model_id` lives (`/` replaced, so one folder per id)."""
    return root / "checkpoints" / model_id.replace("/", "__")


def save_checkpoint(model: Any, base_id: str, tag: str, options: dict[str, Any],
                    result: TrainResult, root: Path, data: str, default: bool = False,
                    arch: str | None = None, description: str = "") -> Path:
    """Save weights (.safetensors) and zoo.json so the checkpoint loads as `base_id.tag`, or
    `family/arch.tag` when the build options make another architecture (`arch`, e.g. a
    ResNet-18 `tiny` build of unetpp/resnet34); zoo.json last: a folder without it is not a
    checkpoint."""
    from zoo.io import atomic_write, write_json

    trained_id = f"{base_id.split('/')[0]}/{arch}.{tag}" if arch else f"{base_id}.{tag}"
    folder = checkpoint_dir(root, trained_id)
    state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    atomic_write(folder / "weights.safetensors", lambda f: f.write(_safetensors_bytes(state)))
    write_json(folder / "zoo.json", {"id": trained_id, "base": base_id, "tag": tag,
                                     "description": description,
                                     "options": options, "data": data, "default": default,
                                     "input": model.input.key(),
                                     "layers": [i.as_dict() for i in model.layers.values()],
                                     "train": result.as_dict()})
    return folder


def _safetensors_bytes(state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    return save(state)


def read_checkpoint_meta(folder: Path) -> dict[str, Any]:
    """The zoo.json of a trained checkpoint folder."""
    return json.loads((folder / "zoo.json").read_text())


def train_and_save(model: str, data: str | Dataset, epochs: int = 10, batch_size: int = 8,
                   lr: float = 1e-3, freeze_encoder: bool = False, loss: str = "bce-dice", *,
                   size: int | None = None, tag: str = "finetuned", weights: str | None = None,
                   random_init: bool = False, device: str = "cpu",
                   options: dict[str, Any] | None = None, default: bool = False,
                   skip_bad: bool = False, progress: Progress | None = None,
                   arch: str | None = None, description: str = ""
                   ) -> tuple[Any, TrainResult, Path]:
    """Load, fine-tune and save one segmentation model as `MODEL.TAG` (or `family/ARCH.TAG`,
    see `save_checkpoint`) in the cache; returns (model, result, checkpoint folder)."""
    from zoo.data.resolve import as_dataset
    from zoo.io import cache_root
    from zoo.model.loading import load_model
    from zoo.registry.host import get_registry

    spec = get_registry().model(model, prefer_trained=False)
    if size is not None and size < 1:
        raise ZooError(f"input size {size}: pass a positive size in px")
    options = {**(options or {}), **({"size": size} if size is not None else {})}
    zmodel = load_model(spec, weights=weights, random_init=random_init, device=device, **options)
    data = as_dataset(data, skip_bad=skip_bad)
    result = train_segmenter(zmodel, data, epochs, batch_size, lr, freeze_encoder, loss,
                             progress=progress)
    build = {k: v for k, v in options.items() if k != "trust_weights"}  # the saved file is safe
    folder = save_checkpoint(zmodel, spec.id, tag, build, result, cache_root(), data.name,
                             default=default, arch=arch, description=description)
    return zmodel, result, folder
