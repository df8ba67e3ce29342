"""Concept sets: images with pixel and whole-image concept labels, the input of a dissection.

A concept's number is its position in `ConceptSet.concepts` plus one; 0 means "no label".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import DataError, UnknownNameError

if TYPE_CHECKING:
    from zoo.data.dataset import Dataset


@dataclass(frozen=True)
class Concept:
    """A named concept and the category (object, part, material, colour, ...) it belongs to."""

    name: str
    category: str


@dataclass
class SampleLabels:
    """One image's labels at label resolution.

    `pixels` (P, H, W) int32 holds P label planes (several labels per cell: one per plane);
    `whole` lists concepts that label the entire image; `categories` are the categories this
    image is annotated for (the per-category denominator rule counts only those images).
    """

    pixels: np.ndarray
    whole: tuple[int, ...] = ()
    categories: frozenset[str] = field(default_factory=frozenset)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])


def centre_square(labels: SampleLabels) -> SampleLabels:
    """Crop the label planes to their central square, as model preprocessing crops images."""
    _, h, w = labels.pixels.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return SampleLabels(labels.pixels[:, top:top + side, left:left + side], labels.whole,
                        labels.categories)


class ConceptSet:
    """Images with concept labels, loaded lazily one image at a time.

    `images[i]()` returns image i (PIL), `labels[i]()` its `SampleLabels`. Label planes are
    cropped to their central square on access, matching the square centre crop of every model.
    """

    def __init__(self, name: str, concepts: Sequence[Concept], ids: Sequence[str],
                 images: Sequence[Callable[[], Any]], labels: Sequence[Callable[[], SampleLabels]],
                 fingerprint: str) -> None:
        if not (len(ids) == len(images) == len(labels)):
            raise ValueError(f"{len(ids)} ids, {len(images)} images, {len(labels)} label loaders")
        self.name = name
        self.concepts = list(concepts)
        self.ids = list(ids)
        self._images = list(images)
        self._labels = list(labels)
        self.fingerprint = fingerprint
        self.categories = tuple(dict.fromkeys(c.category for c in self.concepts))

    def __len__(self) -> int:
        return len(self.ids)

    def number(self, name: str) -> int:
        """The number of the concept called `name` (1-based)."""
        for k, concept in enumerate(self.concepts, start=1):
            if concept.name == name:
                return k
        raise UnknownNameError(f"concept of {self.name}", name, [c.name for c in self.concepts])

    def category_index(self) -> np.ndarray:
        """(concepts,) index of each concept's category in `self.categories`."""
        order = {c: i for i, c in enumerate(self.categories)}
        return np.array([order[c.category] for c in self.concepts], dtype=np.int64)

    def labels(self, i: int) -> SampleLabels:
        """Image i's labels, validated and cropped to the central square."""
        labels = self._labels[i]()
        top = int(labels.pixels.max(initial=0))
        bad = [k for k in labels.whole if not 1 <= k <= len(self.concepts)]
        if top > len(self.concepts) or int(labels.pixels.min(initial=0)) < 0 or bad:
            raise DataError(f"{self.name}: labels of {self.ids[i]} hold concept numbers outside "
                            f"1..{len(self.concepts)}; the label files do not match the concepts")
        # a category without concepts here cannot change any IoU
        labels.categories = frozenset(labels.categories) & frozenset(self.categories)
        return centre_square(labels)

    def image(self, i: int) -> Any:
        """Image i as a PIL image."""
        return self._images[i]()

    def dataset(self) -> Dataset:
        """The images as a `zoo.data.dataset.Dataset`, keyed by the same ids, for feature
        extraction."""
        from zoo.data.dataset import Dataset

        return Dataset(f"concepts:{self.name}", self.ids, self._images, self.fingerprint)
