"""Unsupervised segmentation by layer, oracle protocol (AlignedCut appendix): how well a layer's
eigenvectors separate the ground-truth classes when each class centre is given.

Per class, the centre is the mean unit eigenvector row of its pixels; a pixel belongs to the
class when its cosine to the centre exceeds a threshold. One threshold for all classes is picked
on a grid to maximise the mean IoU. Masks are brought to a layer's grid with the model's own
resize and centre crop, then averaged per cell (a cell is foreground when >= half of it is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.errors import ZooError

THRESHOLDS = np.round(np.arange(-1.0, 1.0001, 0.05), 2)


@dataclass(frozen=True)
class SegmentationScore:
    """Best mean IoU over the threshold grid, its threshold, and per-class IoU there."""

    miou: float
    threshold: float
    class_iou: dict[int, float]
    curve: np.ndarray  # mean IoU at each threshold of `thresholds`
    thresholds: np.ndarray


def _unit(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def oracle_segmentation(eigvecs: np.ndarray, labels: np.ndarray,
                        thresholds: np.ndarray = THRESHOLDS) -> SegmentationScore:
    """Score eigenvector rows (P, k) against integer pixel labels (P,); label < 0 is ignored."""
    eigvecs = np.asarray(eigvecs, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if eigvecs.ndim != 2 or len(eigvecs) != len(labels):
        raise ZooError(f"eigenvectors {eigvecs.shape} and labels {labels.shape} do not pair")
    keep = labels >= 0
    vecs, labels = _unit(eigvecs[keep]), labels[keep]
    classes = np.unique(labels)
    if len(classes) == 0:
        raise ZooError("no labelled pixels to score")
    curves = np.empty((len(classes), len(thresholds)))
    for c, cls in enumerate(classes):
        truth = labels == cls
        cosine = vecs @ _unit(vecs[truth].mean(0, keepdims=True))[0]
        pred = cosine[None, :] > np.asarray(thresholds)[:, None]
        inter = (pred & truth).sum(1)
        union = (pred | truth).sum(1)
        curves[c] = inter / union
    curve = curves.mean(0)
    best = int(np.argmax(curve))
    return SegmentationScore(float(curve[best]), float(thresholds[best]),
                             {int(cls): float(curves[c, best]) for c, cls in enumerate(classes)},
                             curve, np.asarray(thresholds))


def mask_to_grid(mask: np.ndarray, size: int, grid: tuple[int, int]) -> np.ndarray:
    """A binary mask (h, w) -> foreground fraction per cell (H, W) of a layer's grid, after the
    same short-side resize and centre crop to `size` that the model's images get."""
    import torch
    from PIL import Image

    from zoo.model.base import preprocess_image
    from zoo.registry.specs import InputConfig

    plain = InputConfig(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    image = Image.fromarray(np.asarray(mask, bool).astype(np.uint8) * 255).convert("RGB")
    cropped = torch.from_numpy(preprocess_image(image, plain)[:1])
    return torch.nn.functional.adaptive_avg_pool2d(cropped, grid)[0].numpy()


def mask_labels(masks: list[np.ndarray], size: int, grid: tuple[int, int]) -> np.ndarray:
    """Per-cell labels (N, H, W): 1 foreground, 0 background (majority of the cell)."""
    return np.stack([(mask_to_grid(m, size, grid) >= 0.5).astype(np.int64) for m in masks])
