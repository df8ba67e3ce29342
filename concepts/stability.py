"""How stable is each unit's label when the dataset is resampled (bootstrap over images)?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoo.concepts.dissection import Dissection, dissect
from zoo.concepts.labels import ConceptSet
from zoo.errors import ZooError
from zoo.features.layers import LayerFeatures

if TYPE_CHECKING:
    from zoo.progress import Progress


def label_stability(acts: LayerFeatures | np.ndarray, labels: ConceptSet, reference: Dissection,
                    resamples: int = 20, seed: int = 0, *, layout: str | None = None,
                    prefix_tokens: int = 0, progress: Progress | None = None) -> np.ndarray:
    """Per unit, the fraction of bootstrap resamples whose label equals `reference`'s.

    Each resample draws len(labels) images with replacement (seeded) and re-runs the whole
    dissection on it, thresholds included, with `reference`'s quantile and cut-off; "no label"
    is a label too, so a unit that is never labelled scores 1.
    """
    if resamples < 1:
        raise ZooError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    expected = reference.labels()
    agree = np.zeros(reference.units)
    for b in range(resamples):
        weights = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels))
        again = dissect(acts, labels, quantile=reference.quantile,
                        iou_cutoff=reference.iou_cutoff, layout=layout,
                        prefix_tokens=prefix_tokens, sample_weights=weights)
        agree += again.labels() == expected
        if progress:
            progress("stability", b + 1, resamples)
    return agree / resamples
