"""Concept-free unit matching across models: mutual best buddies by activation-map correlation.

Both layers' maps are resampled (bilinear) to one grid and every (image, position) is an
observation; unit i of A and unit j of B are buddies when each is the other's most correlated
unit. Correlations are accumulated over the dataset in two streaming passes (means, then centred
cross-products in float64).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from zoo.concepts.maps import UnitMaps, upsample
from zoo.errors import DataError
from zoo.features.layers import LayerFeatures

if TYPE_CHECKING:
    from zoo.progress import Progress


@dataclass
class BuddyMatch:
    """Pearson correlations (units A x units B), the mutual best-buddy pairs and notes."""

    corr: np.ndarray
    pairs: list[tuple[int, int, float]]
    notes: list[str] = field(default_factory=list)


def _pair_maps(acts_a: LayerFeatures | np.ndarray, acts_b: LayerFeatures | np.ndarray,
               layouts: tuple[str | None, str | None], prefix: tuple[int, int]
               ) -> tuple[UnitMaps, UnitMaps]:
    """Both layers' maps with rows in the same sample order."""
    a = UnitMaps(acts_a, layouts[0], prefix[0])
    b = UnitMaps(acts_b, layouts[1], prefix[1])
    if a.row_ids is not None and b.row_ids is not None:
        b.align(a.row_ids)
    elif len(a) != len(b):
        raise DataError(f"{len(a)} samples in A but {len(b)} in B; extract both over the same "
                        "images, in the same order")
    return a, b


def unit_correlation(a: UnitMaps, b: UnitMaps, grid: tuple[int, int], chunk: int = 16,
                     progress: Progress | None = None) -> np.ndarray:
    """Pearson correlation of every unit of `a` with every unit of `b` over images x grid cells.

    A constant unit has no correlation: its row or column is NaN.
    """
    def rows(maps: UnitMaps, block: np.ndarray) -> np.ndarray:
        return upsample(block, grid).reshape(-1, maps.units).astype(np.float64)

    n = len(a) * grid[0] * grid[1]
    sum_a, sum_b = np.zeros(a.units), np.zeros(b.units)
    for (part, block_a), (_, block_b) in zip(a.chunks(chunk), b.chunks(chunk)):
        sum_a += rows(a, block_a).sum(axis=0)
        sum_b += rows(b, block_b).sum(axis=0)
        if progress:
            progress("correlation means", int(part[-1]) + 1, len(a))
    mean_a, mean_b = sum_a / n, sum_b / n
    cross = np.zeros((a.units, b.units))
    var_a, var_b = np.zeros(a.units), np.zeros(b.units)
    for (part, block_a), (_, block_b) in zip(a.chunks(chunk), b.chunks(chunk)):
        xa, xb = rows(a, block_a) - mean_a, rows(b, block_b) - mean_b
        cross += xa.T @ xb
        var_a += (xa * xa).sum(axis=0)
        var_b += (xb * xb).sum(axis=0)
        if progress:
            progress("correlation", int(part[-1]) + 1, len(a))
    scale = np.sqrt(np.outer(var_a, var_b))
    return np.divide(cross, scale, out=np.full(cross.shape, np.nan), where=scale > 0)


def best_buddies(acts_a: LayerFeatures | np.ndarray, acts_b: LayerFeatures | np.ndarray, *,
                 grid: tuple[int, int] | None = None, layouts: tuple[str | None, str | None] =
                 (None, None), prefix_tokens: tuple[int, int] = (0, 0), chunk: int = 16,
                 progress: Progress | None = None) -> BuddyMatch:
    """Mutual best-buddy units of two layers over the same images (paired by sample id).

    `grid` defaults to the finer of the two layers' grids (each axis separately).
    """
    a, b = _pair_maps(acts_a, acts_b, layouts, prefix_tokens)
    grid = grid or (max(a.grid[0], b.grid[0]), max(a.grid[1], b.grid[1]))
    corr = unit_correlation(a, b, grid, chunk, progress)
    notes = []
    dead_a, dead_b = np.isnan(corr).all(axis=1), np.isnan(corr).all(axis=0)
    if dead_a.any() or dead_b.any():
        notes.append(f"{int(dead_a.sum())} units of A and {int(dead_b.sum())} of B are constant "
                     "over the data (no correlation) and are never matched")
    filled = np.where(np.isnan(corr), -np.inf, corr)
    pairs = []
    if filled.size and np.isfinite(filled).any():
        best_b, best_a = filled.argmax(axis=1), filled.argmax(axis=0)
        pairs = [(i, int(j), float(corr[i, j])) for i, j in enumerate(best_b)
                 if best_a[j] == i and np.isfinite(filled[i, j])]
    return BuddyMatch(corr, pairs, notes)
