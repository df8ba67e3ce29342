"""AlignedCut over a set of (model, layer) feature maps: shared space, one Nystrom normalized cut
over all their pixels, aligned colours, and per-layer positional bias and (with masks)
unsupervised segmentation. Numbers only; `zoo cut` writes and draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from zoo.align.bias import PositionalBias, positional_bias
from zoo.align.colour import aligned_colours, trajectory_coords
from zoo.align.joint import JointLayout, apply_maps, shared_space, stack_blocks
from zoo.align.maps import LinearMap
from zoo.align.nystrom import DEFAULT_LANDMARKS, NcutResult, ncut
from zoo.align.segment import SegmentationScore, oracle_segmentation
from zoo.errors import ZooError
from zoo.progress import Progress


@dataclass
class CutResult:
    """The joint cut and everything derived from it, per node or per block (`layout.keys`).

    `alignment` holds each block's held-out R^2 onto the first block (default shared space) and
    is empty when learned maps were used.
    """

    cut: NcutResult
    layout: JointLayout
    colours: np.ndarray  # (nodes, 3) RGB in [0, 1]
    trajectory: np.ndarray | None  # (nodes, 2) 2-D t-SNE coordinates
    alignment: dict[str, float] = field(default_factory=dict)
    bias: dict[str, PositionalBias] = field(default_factory=dict)
    segmentation: dict[str, SegmentationScore] = field(default_factory=dict)

    def per_block(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Per-node rows laid out per block as (images, H, W, ...)."""
        return self.layout.split(rows)


def aligned_cut(blocks: Mapping[str, np.ndarray], maps: Mapping[str, LinearMap] | None = None,
                dim: int = 32, n_eig: int = 20, n_landmarks: int = DEFAULT_LANDMARKS,
                sigma: float | None = None, affinity: str = "rbf", seed: int = 0,
                device: str = "cpu", labels: Mapping[str, np.ndarray] | None = None,
                trajectory: bool = True, progress: Progress | None = None,
                precision: str = "auto") -> CutResult:
    """Cut the blocks (images, H, W, C), keyed `model:layer`, over the same images as one graph.

    `maps` (learned) or PCA + Procrustes (`shared_space`, width `dim`) put them in one space;
    sigma is fixed once for the joint set; `precision` as in `ncut`. `labels` (images, H, W)
    per block, 1 foreground / 0 background / -1 ignore, adds the oracle segmentation score.
    """
    if not blocks:
        raise ZooError("nothing to cut: no layers given")
    if maps is not None:
        shared, alignment = apply_maps(blocks, maps), {}
    else:
        shared, alignment = shared_space(blocks, dim, seed)
    X, layout = stack_blocks(shared)
    cut = ncut(X, n_eig=n_eig, n_landmarks=n_landmarks, sigma=sigma, affinity=affinity,
               seed=seed, device=device, precision=precision, progress=progress)
    result = CutResult(cut, layout, aligned_colours(cut.eigvecs, cut.landmarks, seed,
                                                   progress=progress),
                       trajectory_coords(cut.eigvecs, cut.landmarks, seed) if trajectory else None,
                       alignment)
    for key, vecs in result.per_block(cut.eigvecs).items():
        block_labels = None if labels is None else labels[key]
        result.bias[key] = positional_bias(vecs, block_labels)
        if block_labels is not None:
            result.segmentation[key] = oracle_segmentation(vecs.reshape(-1, n_eig),
                                                           block_labels.reshape(-1))
    return result
