"""Binary segmentation pieces of the UNet++ vs Mask2Former study: losses, per-image metrics and
data splits. Losses take torch tensors; metrics take numpy arrays.

Empty-mask convention (stated once, used everywhere): when the ground truth and the prediction
are both empty, IoU and Dice are 1 (a correct "nothing here"); when exactly one is empty they are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LOSSES = ("bce-dice", "scaled-dice", "bce", "dice")


def dice_loss(logits: Any, target: Any, scale: float = 1.0, smooth: float = 1.0) -> Any:
    """Soft Dice loss per image, averaged: 1 - (2|P.T| + s) / (|P| + |T| + s) on sigmoid(logits).

    `scale` > 1 gives the study's scaled Dice: probabilities are sharpened as sigmoid(scale * z)
    before the overlap, which weights confident pixels more.
    """
    import torch

    p = torch.sigmoid(scale * logits).flatten(1)
    t = target.flatten(1).float()
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def segmentation_loss(logits: Any, target: Any, kind: str = "bce-dice",
                      dice_scale: float = 2.0) -> Any:
    """Pixel logits (N, H, W) vs binary target: BCE + Dice (default), scaled Dice, BCE or Dice."""
    import torch.nn.functional as F

    if kind not in LOSSES:
        from zoo.errors import UnknownNameError

        raise UnknownNameError("loss", kind, LOSSES)
    bce = F.binary_cross_entropy_with_logits(logits, target.float())
    if kind == "bce":
        return bce
    dice = dice_loss(logits, target, scale=dice_scale if kind == "scaled-dice" else 1.0)
    return bce + dice if kind == "bce-dice" else dice


def image_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU, Dice and pixel accuracy of one binary prediction (empty-mask convention above)."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    inter = np.logical_and(pred, truth).sum()
    union = np.logical_or(pred, truth).sum()
    total = pred.sum() + truth.sum()
    return {"iou": 1.0 if union == 0 else inter / union,
            "dice": 1.0 if total == 0 else 2 * inter / total,
            "pixel_accuracy": float((pred == truth).mean())}


def mean_metrics(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> dict[str, float]:
    """Per-image metrics averaged over images (not pooled over pixels), with the image count."""
    per = [image_metrics(p, t) for p, t in zip(preds, truths, strict=True)]
    out = {k: float(np.mean([m[k] for m in per])) for k in ("iou", "dice", "pixel_accuracy")}
    out["images"] = len(per)
    return out
