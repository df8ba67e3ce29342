"""The joint graph across the zoo: (model, layer) feature maps over the same images put into one
D-dimensional space and stacked as the nodes of one normalized cut.

Two ways into the shared space: learned maps (`zoo align`), or, without them, PCA per block
followed by an orthogonal Procrustes rotation onto the first block, fit on co-located positions
(both blocks average-pooled to a common KxK grid, rows paired by image and position). The
rotation makes colours comparable wherever two layers agree up to a rotation; its held-out R^2
says how far that holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from zoo.align.maps import LinearMap
from zoo.align.pairwise import align_pair
from zoo.errors import DataError, ZooError
from zoo.features.layers import reduce_array


@dataclass(frozen=True)
class JointLayout:
    """Which rows of the stacked node matrix belong to which block, and the block grids."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, int, int], ...]  # (images, H, W) per block

    @property
    def offsets(self) -> np.ndarray:
        """Start row of each block, plus the total as the last entry."""
        return np.concatenate([[0], np.cumsum([n * h * w for n, h, w in self.shapes])])

    def split(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Per-node rows (total, ...) -> per block (images, H, W, ...)."""
        off = self.offsets
        if len(rows) != off[-1]:
            raise ZooError(f"{len(rows)} rows for a joint graph of {off[-1]} nodes")
        return {key: rows[off[i]:off[i + 1]].reshape(*self.shapes[i], *rows.shape[1:])
                for i, key in enumerate(self.keys)}


def stack_blocks(blocks: Mapping[str, np.ndarray]) -> tuple[np.ndarray, JointLayout]:
    """Blocks (images, H, W, D) with one D -> node matrix (total, D) and its layout."""
    dims = {b.shape[-1] for b in blocks.values()}
    if len(dims) != 1:
        raise ZooError(f"blocks have different widths {sorted(dims)}; map them into one space "
                       "first (learned maps or `shared_space`)")
    layout = JointLayout(tuple(blocks), tuple(b.shape[:3] for b in blocks.values()))
    return np.concatenate([b.reshape(-1, b.shape[-1]) for b in blocks.values()]), layout


def apply_maps(blocks: Mapping[str, np.ndarray],
               maps: Mapping[str, LinearMap]) -> dict[str, np.ndarray]:
    """Each block through its learned map; a block without one is an error naming it."""
    missing = [k for k in blocks if k not in maps]
    if missing:
        raise DataError(f"no learned map for {missing[0]} (maps cover: "
                        f"{', '.join(sorted(maps)) or 'none'}); train it with `zoo align`")
    return {k: maps[k].apply(b) for k, b in blocks.items()}


def pca_block(block: np.ndarray, dim: int) -> np.ndarray:
    """(images, H, W, C) -> top-`dim` principal coordinates, scaled to unit mean squared norm
    and zero-padded when the block has fewer than `dim` channels."""
    rows = block.reshape(-1, block.shape[-1]).astype(np.float64)
    rows -= rows.mean(0)
    _, vecs = np.linalg.eigh(rows.T @ rows)
    coords = rows @ vecs[:, ::-1][:, :dim]
    norm = np.sqrt((coords ** 2).sum(1).mean())
    if not norm > 0:
        raise ZooError("a block's features are constant; it has no structure to cut")
    out = np.zeros((len(rows), dim), np.float32)
    out[:, :coords.shape[1]] = coords / norm
    return out.reshape(*block.shape[:3], dim)


def _pooled_rows(block: np.ndarray, k: int) -> np.ndarray:
    ids = [str(i) for i in range(len(block))]
    rows, _ = reduce_array(block, "NCHW", ids, f"positions:{k}")
    return rows


def shared_space(blocks: Mapping[str, np.ndarray], dim: int,
                 seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """PCA each block to `dim`, rotate each onto the first block by orthogonal Procrustes on
    co-located positions; returns the blocks and each rotation's held-out R^2."""
    if dim < 1:
        raise ZooError(f"shared dimension must be >= 1, got {dim}")
    reduced = {k: pca_block(b, dim) for k, b in blocks.items()}
    ref_key = next(iter(reduced))
    ref = reduced[ref_key]
    n = len(ref)
    out, scores = {ref_key: ref}, {ref_key: 1.0}
    for key, block in list(reduced.items())[1:]:
        if len(block) != n:
            raise ZooError(f"{key} has {len(block)} images, {ref_key} has {n}; cut blocks over "
                           "the same images")
        k = min(ref.shape[1], ref.shape[2], block.shape[1], block.shape[2])
        x, y = _pooled_rows(block, k), _pooled_rows(ref, k)
        groups = np.repeat(np.arange(n), k * k) if n > 1 else None
        fit = align_pair(x, y, "procrustes", max(0.25, 1 / n) if n > 1 else 0.25, groups, seed)
        aligned = fit.transform_x(block.reshape(-1, dim)) + fit.y_mean
        out[key] = aligned.astype(np.float32).reshape(block.shape)
        scores[key] = fit.score
    return out, scores
