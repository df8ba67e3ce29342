"""Positional bias check: how much a layer's eigenvectors follow image position and borders
rather than content (from the unsupervised-segmentation protocol for self-supervised ViTs).

Each score is the share of the eigenvectors' variance explained by a grouping of the pixels (a
one-way ANOVA R^2): by grid position, by border ring (distance to the nearest image edge) and,
when masks are given, by the ground-truth label. Groupings with more groups explain more by
chance, so each score comes with its expectation for eigenvectors unrelated to the grouping,
(groups - 1) / (pixels - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.errors import ZooError


@dataclass(frozen=True)
class PositionalBias:
    """Variance shares in [0, 1] with their chance levels; content is None without masks."""

    position_r2: float
    position_chance: float
    border_r2: float
    border_chance: float
    content_r2: float | None = None
    content_chance: float | None = None


def explained_share(values: np.ndarray, groups: np.ndarray) -> float:
    """Between-group sum of squares / total sum of squares of rows `values` (n, k)."""
    values = np.asarray(values, np.float64).reshape(len(groups), -1)
    _, groups = np.unique(groups, return_inverse=True)
    centred = values - values.mean(0)
    total = (centred ** 2).sum()
    if not total > 0:
        raise ZooError("the eigenvectors are constant over these pixels: no variance to explain")
    counts = np.bincount(groups)
    sums = np.zeros((len(counts), values.shape[1]))
    np.add.at(sums, groups, centred)
    return float(((sums ** 2).sum(1) / counts).sum() / total)


def _chance(groups: np.ndarray) -> float:
    return (len(np.unique(groups)) - 1) / (groups.size - 1)


def border_rings(h: int, w: int) -> np.ndarray:
    """(h, w) ring index: 0 on the image border, 1 one cell in, and so on."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.minimum(np.minimum(rows, h - 1 - rows), np.minimum(cols, w - 1 - cols))


def positional_bias(eigvecs: np.ndarray, labels: np.ndarray | None = None) -> PositionalBias:
    """Scores for one layer's eigenvectors laid out (N images, H, W, k); `labels` (N, H, W)."""
    eigvecs = np.asarray(eigvecs)
    if eigvecs.ndim != 4:
        raise ZooError(f"positional bias needs eigenvectors laid out (N, H, W, k), got "
                       f"{eigvecs.shape}")
    n, h, w, k = eigvecs.shape
    values = eigvecs.reshape(-1, k)
    position = np.broadcast_to(np.arange(h * w).reshape(h, w), (n, h, w)).reshape(-1)
    ring = np.broadcast_to(border_rings(h, w), (n, h, w)).reshape(-1)
    content = content_chance = None
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.size != n * h * w:
            raise ZooError(f"labels of {labels.size} pixels for {n}x{h}x{w} eigenvector rows")
        content = explained_share(values, labels)
        content_chance = _chance(labels)
    return PositionalBias(explained_share(values, position), _chance(position),
                          explained_share(values, ring), _chance(ring), content, content_chance)
