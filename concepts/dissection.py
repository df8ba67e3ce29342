"""Network Dissection on arrays: per-unit top-quantile masks scored by IoU against concepts.

As in Bau et al. (2017): a unit's threshold is the top `quantile` of its activations over the
dataset; its maps are upsampled bilinearly to label resolution and thresholded; intersections
and unions with every concept are summed over the whole dataset, where a concept's union counts
the unit's active pixels only in images annotated for the concept's category. A unit is labelled
with its best concept when that IoU exceeds `iou_cutoff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.concepts.labels import Concept, ConceptSet
from zoo.concepts.maps import UnitMaps, upsample
from zoo.concepts.threshold import check_quantile, top_quantile_thresholds
from zoo.errors import ZooError
from zoo.features.layers import LayerFeatures

if TYPE_CHECKING:
    from zoo.progress import Progress

DEFAULT_QUANTILE = 0.005
DEFAULT_IOU_CUTOFF = 0.04


@dataclass
class Dissection:
    """IoU of every unit with every concept, and the labels and profiles derived from it."""

    concepts: list[Concept]
    iou: np.ndarray  # (units, concepts) float64
    thresholds: np.ndarray  # (units,) float32
    quantile: float = DEFAULT_QUANTILE
    iou_cutoff: float = DEFAULT_IOU_CUTOFF

    @property
    def units(self) -> int:
        return int(self.iou.shape[0])

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """Per unit: index of its best concept (into `concepts`) and that IoU."""
        if not self.concepts:
            return np.zeros(self.units, int), np.zeros(self.units)
        idx = self.iou.argmax(axis=1)
        return idx, self.iou[np.arange(self.units), idx]

    def labels(self) -> np.ndarray:
        """Per unit: index of its label concept, or -1 when its best IoU is not above the cutoff."""
        idx, iou = self.best()
        return np.where(iou > self.iou_cutoff, idx, -1)

    def unit_table(self) -> list[dict[str, Any]]:
        """One row per unit: best concept, its category, IoU and whether it is a label."""
        idx, iou = self.best()
        rows = []
        for u in range(self.units):
            concept = self.concepts[idx[u]] if self.concepts else Concept("", "")
            rows.append({"unit": u, "concept": concept.name, "category": concept.category,
                         "iou": float(iou[u]), "labelled": bool(iou[u] > self.iou_cutoff),
                         "threshold": float(self.thresholds[u])})
        return rows

    def profile(self) -> dict[str, int]:
        """The layer's profile: labelled units per concept (concepts with at least one unit)."""
        labels = self.labels()
        counts = np.bincount(labels[labels >= 0], minlength=len(self.concepts))
        return {self.concepts[k].name: int(counts[k]) for k in np.flatnonzero(counts)}

    def abstracted(self) -> dict[str, dict[str, int]]:
        """Per category: labelled units (`units`) and distinct concepts among them (`concepts`)."""
        out: dict[str, dict[str, int]] = {}
        for name, count in self.profile().items():
            category = self.category_of(name)
            entry = out.setdefault(category, {"units": 0, "concepts": 0})
            entry["units"] += count
            entry["concepts"] += 1
        return out

    def category_of(self, name: str) -> str:
        """The category of the concept called `name`."""
        return next(c.category for c in self.concepts if c.name == name)


@dataclass
class Tallies:
    """Sums over a dataset: intersections (units, concepts), active pixels per unit and category
    (units, categories), and labelled pixels per concept (concepts,)."""

    inter: np.ndarray
    active: np.ndarray
    pixels: np.ndarray

    def iou(self, category_index: np.ndarray) -> np.ndarray:
        """IoU with the per-category denominator rule; 0 where the union is empty."""
        union = self.active[:, category_index] + self.pixels[None, :] - self.inter
        return np.divide(self.inter, union, out=np.zeros(union.shape), where=union > 0)


def tally(maps: UnitMaps, labels: ConceptSet, thresholds: np.ndarray,
          weights: np.ndarray | None = None, progress: Progress | None = None) -> Tallies:
    """Sum intersections and unions over the labelled images (weight w counts an image w times)."""
    units, n_concepts = maps.units, len(labels.concepts)
    inter = np.zeros((units, n_concepts), np.int64)
    active = np.zeros((units, len(labels.categories)), np.int64)
    pixels = np.zeros(n_concepts, np.int64)
    cat_pos = {c: i for i, c in enumerate(labels.categories)}
    samples = np.arange(len(maps)) if weights is None else np.flatnonzero(weights)
    for done, j in enumerate(samples, start=1):
        w = 1 if weights is None else int(weights[j])
        lab = labels.labels(int(j))
        live, on = _active(maps.read(np.array([j])), thresholds, lab.shape)
        count = np.zeros(units, np.int64)
        count[live] = np.count_nonzero(on, axis=0)
        concept, pixel = _labelled_pixels(lab.pixels)
        if concept.size:
            present, column = np.unique(concept, return_inverse=True)
            member = np.zeros((on.shape[0], present.size), np.float32)
            member[pixel, column] = 1.0
            if live.size:  # float32 counts are exact below 2**24 pixels per image
                hits = np.rint(on.T.astype(np.float32) @ member).astype(np.int64)
                inter[np.ix_(live, present - 1)] += w * hits
            pixels[present - 1] += w * np.bincount(column).astype(np.int64)
        for k in set(lab.whole):
            inter[:, k - 1] += w * count
            pixels[k - 1] += w * on.shape[0]
        for cat in lab.categories:
            active[:, cat_pos[cat]] += w * count
        if progress:
            progress("iou", done, len(samples))
    return Tallies(inter, active, pixels)


def _active(block: np.ndarray, thresholds: np.ndarray, shape: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """One image's (1, h, w, C) maps -> the units active anywhere, and their (H*W, live) masks
    at label resolution. Bilinear values never exceed their inputs, so a unit whose map stays
    at or below its threshold is off everywhere and is not upsampled."""
    live = np.flatnonzero(block.reshape(-1, block.shape[-1]).max(axis=0) > thresholds)
    on = upsample(block[..., live], shape)[0] > thresholds[live]
    return live, on.reshape(shape[0] * shape[1], live.size)


def _labelled_pixels(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (concept, flat pixel) pairs of the label planes, sorted by concept: a pixel
    carrying the same concept in two planes counts once."""
    n_pixels = planes.shape[1] * planes.shape[2]
    flat = planes.reshape(len(planes), n_pixels).astype(np.int64)
    code = np.unique((flat * n_pixels + np.arange(n_pixels))[flat > 0])
    return code // n_pixels, code % n_pixels


def check_settings(quantile: float, iou_cutoff: float) -> None:
    """Fail early, with the way out, on a quantile or IoU cut-off that cannot work."""
    check_quantile(quantile)
    if not 0.0 <= iou_cutoff < 1.0:
        raise ZooError(f"IoU cut-off {iou_cutoff} must lie in [0, 1) "
                       f"(default {DEFAULT_IOU_CUTOFF})")


def dissect(acts: LayerFeatures | np.ndarray, labels: ConceptSet, *,
            quantile: float = DEFAULT_QUANTILE, iou_cutoff: float = DEFAULT_IOU_CUTOFF,
            layout: str | None = None, prefix_tokens: int = 0,
            sample_weights: np.ndarray | None = None,
            progress: Progress | None = None) -> Dissection:
    """Dissect one layer: IoU of every unit with every concept of `labels`.

    `acts` are channels-last maps (N, H, W, C) or ViT tokens (N, L, C) with `prefix_tokens`
    first (a `LayerFeatures` brings its own layout and is paired with `labels` by sample id;
    a bare array must follow `labels.ids`). `sample_weights` (N,) integer multiplicities dissect
    a resample of the dataset without copying it.
    """
    check_settings(quantile, iou_cutoff)
    maps = UnitMaps(acts, layout, prefix_tokens, labels.ids)
    if sample_weights is not None:
        sample_weights = np.asarray(sample_weights, dtype=np.int64)
        if sample_weights.shape != (len(labels),) or (sample_weights < 0).any():
            raise ZooError(f"sample_weights must be {len(labels)} non-negative integers")

    def batches():
        for part, block in maps.chunks():
            rows = block.reshape(-1, maps.units)
            if sample_weights is None:
                yield rows, None
            else:
                yield rows, np.repeat(sample_weights[part], rows.shape[0] // len(part))

    thresholds, _ = top_quantile_thresholds(batches, maps.units, quantile, progress)
    tallies = tally(maps, labels, thresholds, sample_weights, progress)
    return Dissection(labels.concepts, tallies.iou(labels.category_index()), thresholds,
                      quantile, iou_cutoff)
