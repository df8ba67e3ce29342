"""Pixel colour concepts for any image set: the 11 basic colour names by nearest prototype.

Naming is the nearest focal colour in CIELAB (D65), a simple stand-in for the learned colour
naming table Broden used; every pixel gets exactly one colour name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.concepts.labels import Concept, ConceptSet, SampleLabels

if TYPE_CHECKING:
    from zoo.data.dataset import Dataset

CATEGORY = "colour"
# The 11 basic colour terms (Berlin and Kay) with an sRGB focal colour each.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "blue": (30, 60, 190), "brown": (120, 70, 30),
    "grey": (128, 128, 128), "green": (40, 160, 50), "orange": (245, 140, 20),
    "pink": (245, 150, 190), "purple": (125, 50, 160), "red": (210, 30, 30),
    "white": (250, 250, 250), "yellow": (245, 225, 40),
}
NAMES = tuple(COLOURS)
DEFAULT_SIZE = 112


def colour_concepts_list() -> list[Concept]:
    """The 11 colour concepts, in `NAMES` order."""
    return [Concept(name, CATEGORY) for name in NAMES]


def name_colours(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> (...) index into `NAMES` of the nearest focal colour in CIELAB."""
    from skimage.color import rgb2lab

    rgb = np.asarray(rgb)
    lab = rgb2lab(rgb.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)
    protos = rgb2lab(np.array([list(COLOURS.values())], dtype=np.float64) / 255.0)[0]
    dist = ((lab[:, None, :] - protos[None, :, :]) ** 2).sum(axis=-1)
    return dist.argmin(axis=1).reshape(rgb.shape[:-1])


def _square_rgb(image: Any, size: int) -> np.ndarray:
    """The image's central square resized to `size` px, as (size, size, 3) uint8."""
    from PIL import Image

    im = image.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def colour_labels(image: Any, size: int = DEFAULT_SIZE) -> SampleLabels:
    """One image's colour labels: its central square at `size` px, each pixel named."""
    names = name_colours(_square_rgb(image, size))
    return SampleLabels((names + 1).astype(np.int32)[None], (), frozenset({CATEGORY}))


def colour_concepts(dataset: Dataset, size: int = DEFAULT_SIZE) -> ConceptSet:
    """A concept set of `dataset`'s images labelled with pixel colour names (computed lazily)."""
    from zoo.features.cache import cache_key

    def labels(i: int) -> SampleLabels:
        return colour_labels(dataset.image(i), size)

    images = [lambda i=i: dataset.image(i) for i in range(len(dataset))]
    loaders = [lambda i=i: labels(i) for i in range(len(dataset))]
    fingerprint = cache_key({"colour": dataset.fingerprint, "size": size, "names": NAMES})
    return ConceptSet(f"colour:{dataset.name}", colour_concepts_list(), dataset.ids, images,
                      loaders, fingerprint)
