"""A deterministic synthetic concept set: objects made of parts, materials as textures, colours.

Each image is drawn on the fly from its own seed: a textured, coloured background and one or two
objects, each a stack of geometric parts with its own colour and material. The label planes
(object, part, material, colour) record what was painted last at every pixel, so the masks are
exact by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from zoo.concepts.colours import COLOURS, colour_concepts_list
from zoo.concepts.labels import Concept, ConceptSet, SampleLabels

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Parts in drawing order, as shapes in the object's frame (u right, v down, both in [-1, 1]).
OBJECTS: dict[str, dict[str, Shape]] = {
    "house": {
        "wall": lambda u, v: (abs(u) <= 0.7) & (v >= -0.1) & (v <= 0.9),
        "roof": lambda u, v: (v >= -0.9) & (v <= -0.1) & (abs(u) <= 0.9 * (v + 0.9) / 0.8),
        "door": lambda u, v: (abs(u) <= 0.2) & (v >= 0.35) & (v <= 0.9),
    },
    "tree": {
        "trunk": lambda u, v: (abs(u) <= 0.15) & (v >= 0.1) & (v <= 1.0),
        "crown": lambda u, v: u**2 + (v + 0.35) ** 2 <= 0.6**2,
    },
    "car": {
        "body": lambda u, v: (abs(u) <= 1.0) & (v >= -0.2) & (v <= 0.45),
        "window": lambda u, v: (u >= -0.55) & (u <= 0.35) & (v >= -0.65) & (v < -0.2),
        "wheel": lambda u, v: (abs(u) - 0.55) ** 2 + (v - 0.5) ** 2 <= 0.3**2,
    },
    "lamp": {
        "pole": lambda u, v: (abs(u) <= 0.08) & (v >= -0.3) & (v <= 0.8),
        "shade": lambda u, v: (v >= -0.9) & (v <= -0.3) & (abs(u) <= 0.3 + 0.4 * (v + 0.9) / 0.6),
        "base": lambda u, v: (u / 0.5) ** 2 + ((v - 0.85) / 0.15) ** 2 <= 1.0,
    },
}
MATERIALS = ("wood", "brick", "fabric", "metal", "stone")
PLANES = ("object", "part", "material", "colour")
TEXTURE_CONTRAST = 50.0  # texture swings the painted colour by +-25 levels around its prototype


def synthetic_concept_list() -> list[Concept]:
    """Objects, then parts, materials and colours (concept number = index + 1)."""
    objects = [Concept(name, "object") for name in OBJECTS]
    parts = [Concept(part, "part") for shapes in OBJECTS.values() for part in shapes]
    return objects + parts + [Concept(m, "material") for m in MATERIALS] + colour_concepts_list()


def _textures(rng: np.random.Generator, size: int) -> np.ndarray:
    """(materials, S, S) texture maps in [0, 1], one per material, phases drawn from `rng`."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    p = size / 12 * rng.uniform(0.8, 1.2)
    wood = 0.5 + 0.5 * np.sin(2 * np.pi * (x / p + 0.15 * np.sin(2 * np.pi * y / (3 * p))))
    h = size / 10
    row = np.floor(y / h)
    mortar = (np.mod(y, h) < 1.5) | (np.mod(x + (row % 2) * h, 2 * h) < 1.5)
    q = max(size / 24, 1.0)
    fabric = (np.floor(x / q) + np.floor(y / q)) % 2
    theta = rng.uniform(0, np.pi)
    metal = 0.5 + 0.5 * np.cos(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / (1.5 * size))
    cell = max(size // 16, 1)
    grain = rng.uniform(0, 1, (-(-size // cell),) * 2)
    stone = np.repeat(np.repeat(grain, cell, axis=0), cell, axis=1)[:size, :size]
    return np.stack([wood, (~mortar).astype(float), fabric, metal, stone])


def render(index: int, size: int = 96, seed: int = 0) -> tuple[np.ndarray, SampleLabels]:
    """Image `index` of the set: (S, S, 3) uint8 RGB and its exact label planes."""
    rng = np.random.default_rng([seed, index])
    concepts = synthetic_concept_list()
    number = {(c.category, c.name): k for k, c in enumerate(concepts, start=1)}
    protos = np.array(list(COLOURS.values()), dtype=np.float64)
    textures = _textures(rng, size)
    planes = np.zeros((len(PLANES), size, size), np.int32)
    rgb = np.zeros((size, size, 3))

    def paint(region: np.ndarray, obj: str | None, part: str | None) -> None:
        material, colour = int(rng.integers(len(MATERIALS))), int(rng.integers(len(protos)))
        shade = protos[colour] + TEXTURE_CONTRAST * (textures[material][region, None] - 0.5)
        rgb[region] = shade
        planes[0][region] = number[("object", obj)] if obj else 0
        planes[1][region] = number[("part", part)] if part else 0
        planes[2][region] = number[("material", MATERIALS[material])]
        planes[3][region] = number[("colour", list(COLOURS)[colour])]

    paint(np.ones((size, size), bool), None, None)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(int(rng.integers(1, 3))):
        obj = list(OBJECTS)[int(rng.integers(len(OBJECTS)))]
        half = rng.uniform(0.22, 0.34) * size
        cx, cy = rng.uniform(half, size - half, 2)
        u, v = (x - cx) / half, (y - cy) / half
        for part, shape in OBJECTS[obj].items():
            paint(shape(u, v), obj, part)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return image, SampleLabels(planes, (), frozenset(PLANES))


def synthetic_concepts(n: int = 64, size: int = 96, seed: int = 0) -> ConceptSet:
    """`n` synthetic images of `size` px with exact object/part/material/colour labels."""
    from zoo.features.cache import cache_key

    def image(i: int) -> Any:
        from PIL import Image

        return Image.fromarray(render(i, size, seed)[0])

    ids = [f"synthetic-concepts/{i:05d}" for i in range(n)]
    images = [lambda i=i: image(i) for i in range(n)]
    labels = [lambda i=i: render(i, size, seed)[1] for i in range(n)]
    fingerprint = cache_key({"synthetic-concepts": 1, "n": n, "size": size, "seed": seed})
    return ConceptSet(f"synthetic:{n}", synthetic_concept_list(), ids, images, labels, fingerprint)
