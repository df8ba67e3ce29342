"""AlignedCut: channel alignment, Nystrom normalized cut, aligned colours, segmentation by layer.

Importing this package is cheap (numpy only); torch, scipy and scikit-learn load inside the
functions that use them.
"""

from zoo.align.affinity import AFFINITIES, estimate_sigma
from zoo.align.bias import PositionalBias, positional_bias
from zoo.align.colour import aligned_colours, to_rgb, trajectory_coords
from zoo.align.joint import JointLayout, apply_maps, shared_space, stack_blocks
from zoo.align.learned import AlignConfig, AlignmentRun, train_alignment
from zoo.align.maps import LinearMap, load_maps, map_key, save_maps
from zoo.align.nystrom import NcutResult, exact_ncut, ncut, subspace_cosines
from zoo.align.pairwise import METHODS, PairwiseAlignment, align_pair
from zoo.align.pipeline import AlignRun, CutRun, align, cut
from zoo.align.segment import SegmentationScore, mask_labels, oracle_segmentation

__all__ = [
    "AFFINITIES", "METHODS", "AlignConfig", "AlignRun", "AlignmentRun", "CutRun", "JointLayout",
    "LinearMap", "align", "cut",
    "NcutResult", "PairwiseAlignment", "PositionalBias", "SegmentationScore", "align_pair",
    "aligned_colours", "apply_maps", "estimate_sigma", "exact_ncut", "load_maps", "map_key",
    "mask_labels", "ncut", "oracle_segmentation", "positional_bias", "save_maps",
    "shared_space", "stack_blocks", "subspace_cosines", "to_rgb", "trajectory_coords",
    "train_alignment",
]
