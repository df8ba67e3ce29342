"""The study's segmentation pieces: losses, per-image metrics, splits, and training that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data.sources import split_indices
from zoo.errors import ZooError
from zoo.study.segmentation import (
    dice_loss,
    image_metrics,
    mean_metrics,
    segmentation_loss,
)


def test_image_metrics_hand_case():
    truth = np.array([[1, 1, 0, 0]] * 2, bool)     # 4 foreground pixels
    pred = np.array([[1, 0, 0, 0], [1, 1, 1, 0]], bool)  # 4 predicted, 3 overlap
    m = image_metrics(pred, truth)
    assert m["iou"] == pytest.approx(3 / 5)
    assert m["dice"] == pytest.approx(2 * 3 / 8)
    assert m["pixel_accuracy"] == pytest.approx(6 / 8)


def test_empty_mask_convention():
    empty = np.zeros((3, 3), bool)
    some = empty.copy()
    some[1, 1] = True
    assert image_metrics(empty, empty) == {"iou": 1.0, "dice": 1.0, "pixel_accuracy": 1.0}
    assert image_metrics(some, empty)["iou"] == 0.0 and image_metrics(empty, some)["dice"] == 0.0


def test_mean_metrics_average_per_image_not_per_pixel():
    big = np.ones((10, 10), bool)
    small = np.zeros((10, 10), bool)
    small[0, 0] = True
    m = mean_metrics([big, np.zeros((10, 10), bool)], [big, small])
    assert m["dice"] == pytest.approx(0.5) and m["images"] == 2  # pooled pixels would give ~0.99


def test_dice_and_combined_losses():
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    perfect = (target * 2 - 1) * 50  # confident, correct logits
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    zero = torch.zeros_like(target)  # p = 0.5 everywhere: Dice = (2*1 + 1) / (2 + 2 + 1)
    assert dice_loss(zero, target).item() == pytest.approx(1 - 3 / 5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(zero, target)
    assert segmentation_loss(zero, target, "bce-dice").item() == pytest.approx(
        bce.item() + 0.4)
    # scaled Dice sharpens the probabilities: a mildly right prediction scores better
    mild = (target * 2 - 1) * 0.5
    assert segmentation_loss(mild, target, "scaled-dice") < segmentation_loss(mild, target, "dice")
    with pytest.raises(ZooError, match="unknown loss"):
        segmentation_loss(zero, target, "focal")


def test_splits_are_disjoint_seeded_and_keep_named_splits():
    ids = [f"s{i}" for i in range(40)]
    a, b = split_indices(ids, seed=3), split_indices(ids, seed=3)
    assert a == b
    sets = [set(v) for v in a.values()]
    assert sum(len(s) for s in sets) == 40 and not (sets[0] & sets[1] or sets[0] & sets[2]
                                                     or sets[1] & sets[2])
    assert len(a["test"]) == 6 and len(a["validation"]) == 6
    named = ["train/a", "train/b", "train/c", "train/d", "validation/e", "test/f", "test/g"]
    s = split_indices(named)
    assert s["test"] == [5, 6] and s["validation"] == [4] and s["train"] == [0, 1, 2, 3]
    carved = split_indices(["train/x"] * 0 + [f"train/{i}" for i in range(20)])
    assert carved["test"] and carved["validation"]  # missing splits come out of train


@pytest.mark.parametrize("family", ["unetpp", "mask2former"])
def test_a_few_training_steps_lower_the_loss(family: str):
    from zoo.registry.host import get_registry

    torch.manual_seed(0)
    model = get_registry().model(family).load(random_init=True, tiny=True)
    size = model.input.size
    x = torch.randn(4, 3, size, size)
    masks = torch.zeros(4, size, size)
    masks[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    params = model.set_trainable(freeze_encoder=False)
    optimiser = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = model.segmentation_loss(x, masks, "bce-dice")
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_train_segmenter_selects_on_validation_and_reports_every_split():
    from zoo.data.sources import lesions
    from zoo.registry.host import get_registry
    from zoo.study.train import train_segmenter

    model = get_registry().model("unetpp").load(random_init=True, tiny=True)
    result = train_segmenter(model, lesions("24"), epochs=2, batch_size=8, lr=3e-3)
    assert set(result.metrics) == {"train", "validation", "test"}
    assert result.splits == {"train": 16, "validation": 4, "test": 4}
    best = max(range(len(result.history)), key=lambda e: result.history[e]["val_dice"])
    assert result.best_epoch == best
    assert result.metrics["validation"]["dice"] == pytest.approx(
        result.history[best]["val_dice"])


def test_training_needs_masks_and_a_segmentation_model():
    from zoo.data.sources import bundled_samples
    from zoo.registry.host import get_registry
    from zoo.study.train import train_segmenter

    with pytest.raises(ZooError, match="not a segmentation model"):
        train_segmenter(get_registry().model("toy").load(), bundled_samples())
    model = get_registry().model("unetpp").load(random_init=True, tiny=True)
    with pytest.raises(ZooError, match="has no masks"):
        train_segmenter(model, bundled_samples())
