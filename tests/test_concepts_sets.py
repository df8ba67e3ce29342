"""Concept sets: the synthetic set, colour naming, the Broden reader and `--concepts` sources."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.concepts import open_concepts, read_broden, synthetic_concepts
from zoo.concepts.colours import COLOURS, NAMES, colour_concepts, name_colours
from zoo.concepts.synthetic import OBJECTS, TEXTURE_CONTRAST, render
from zoo.errors import DataError, UnknownNameError, ZooError


def test_synthetic_set_is_deterministic_and_lazy_per_image():
    a, b = synthetic_concepts(4, size=32, seed=3), synthetic_concepts(4, size=32, seed=3)
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(a.image(i)), np.asarray(b.image(i)))
        np.testing.assert_array_equal(a.labels(i).pixels, b.labels(i).pixels)
    assert a.fingerprint == b.fingerprint != synthetic_concepts(4, size=32, seed=4).fingerprint
    other = synthetic_concepts(4, size=32, seed=4)
    assert not np.array_equal(np.asarray(a.image(0)), np.asarray(other.image(0)))


def test_synthetic_masks_are_exact_objects_are_unions_of_their_parts_and_colours_match():
    cs = synthetic_concepts(12, size=40)
    assert cs.categories == ("object", "part", "material", "colour")
    protos = np.array(list(COLOURS.values()), dtype=float)
    colour0 = cs.number(NAMES[0])
    for i in range(len(cs)):
        rgb = np.asarray(cs.image(i), dtype=float)
        obj, part, material, colour = cs.labels(i).pixels
        assert (material > 0).all() and (colour > 0).all()  # every pixel has both
        # an object covers exactly the pixels of its parts
        assert np.array_equal(obj > 0, part > 0)
        for name, parts in OBJECTS.items():
            union = np.isin(part, [cs.number(p) for p in parts])
            assert np.array_equal(obj == cs.number(name), union)
        # each pixel was painted with its labelled colour, up to the texture swing
        painted = protos[colour - colour0]
        assert np.abs(rgb - painted).max() <= TEXTURE_CONTRAST / 2 + 0.5


def test_synthetic_objects_appear_and_render_returns_image_and_labels():
    seen = set()
    for i in range(20):
        image, labels = render(i, size=32)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert labels.pixels.shape == (4, 32, 32)
        seen |= set(np.unique(labels.pixels[0])) - {0}
    assert len(seen) == len(OBJECTS)  # every object drawn somewhere in 20 images


def test_colour_names_of_focal_colours_and_obvious_colours():
    protos = np.array(list(COLOURS.values()), np.uint8)
    assert [NAMES[i] for i in name_colours(protos)] == list(NAMES)
    obvious = np.array([[255, 0, 0], [0, 0, 255], [0, 200, 0], [255, 255, 255], [0, 0, 0]],
                       np.uint8)
    assert [NAMES[i] for i in name_colours(obvious)] == ["red", "blue", "green", "white", "black"]
    assert len(NAMES) == 11


def test_colour_concepts_label_every_pixel_of_any_image_set_on_the_centre_square():
    from zoo.data.dataset import Dataset

    # a 12x6 image: left half red, right half blue; the centre square is columns 3..8
    arr = np.zeros((6, 12, 3), np.uint8)
    arr[:, :6] = (210, 30, 30)
    arr[:, 6:] = (30, 60, 190)
    ds = Dataset("two", ["a"], [lambda: Image.fromarray(arr)], "fp")
    cs = colour_concepts(ds, size=6)
    labels = cs.labels(0)
    assert labels.pixels.shape == (1, 6, 6) and labels.categories == {"colour"}
    assert set(np.unique(labels.pixels[0, :, :3])) == {cs.number("red")}
    assert set(np.unique(labels.pixels[0, :, 3:])) == {cs.number("blue")}
    assert cs.dataset().ids == ["a"]


# --- a tiny Broden folder -----------------------------------------------------------------

def _png(path: Path, numbers: np.ndarray) -> str:
    """Encode label numbers as R + 256 * G."""
    rgb = np.zeros((*numbers.shape, 3), np.uint8)
    rgb[..., 0] = numbers % 256
    rgb[..., 1] = numbers // 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path.name


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def broden(tmp_path: Path) -> Path:
    """3 images; labels 1 red-c (color), 2 sky (object), 300 wheel (object and part, mostly
    part), 301 street-s (scene, whole image), 520 grass (object)."""
    root = tmp_path / "broden"
    images = root / "images"
    images.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8), (90, 90, 90)).save(images / name)
    obj = np.array([[2, 2, 2, 2], [2, 2, 2, 2], [300, 300, 0, 0], [520, 520, 0, 0]])
    part = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [300, 300, 0, 0], [0, 0, 0, 0]])
    colour = np.ones((4, 4), int)
    _png(images / "a_object.png", obj)
    _png(images / "a_part_1.png", part)
    _png(images / "a_color.png", colour)
    _png(images / "b_color.png", colour)
    _png(images / "c_color.png", colour)
    head = {"image": "", "split": "", "ih": 8, "iw": 8, "sh": 4, "sw": 4}
    _write(root / "index.csv", [
        {**head, "image": "a.jpg", "split": "train", "color": "a_color.png",
         "object": "a_object.png", "part": "a_part_1.png", "scene": "301"},
        {**head, "image": "b.jpg", "split": "train", "color": "b_color.png", "object": "",
         "part": "", "scene": ""},
        {**head, "image": "c.jpg", "split": "val", "color": "c_color.png", "object": "",
         "part": "", "scene": ""}])
    _write(root / "category.csv", [{"name": c, "first": 0, "last": 0, "count": 1,
                                    "frequency": 1} for c in ("color", "object", "part",
                                                              "scene")])
    _write(root / "label.csv", [
        {"number": 0, "name": "-", "category": "", "frequency": 0, "coverage": 0, "syns": ""},
        {"number": 1, "name": "red-c", "category": "color(3)", "frequency": 3, "coverage": 1,
         "syns": ""},
        {"number": 2, "name": "sky", "category": "object(1)", "frequency": 1, "coverage": 0.5,
         "syns": ""},
        {"number": 300, "name": "wheel", "category": "object(1);part(1)", "frequency": 1,
         "coverage": 0.1, "syns": ""},
        {"number": 301, "name": "street-s", "category": "scene(1)", "frequency": 1,
         "coverage": 1, "syns": ""},
        {"number": 520, "name": "grass", "category": "object(1)", "frequency": 1,
         "coverage": 0.1, "syns": ""}])
    c_row = {"code": 0, "number": 0, "name": "", "frequency": 1, "coverage": 0.0}
    _write(root / "c_color.csv", [{**c_row, "code": 1, "number": 1, "name": "red-c"}])
    _write(root / "c_object.csv", [{**c_row, "code": 1, "number": 2, "name": "sky",
                                    "coverage": 0.5},
                                   {**c_row, "code": 2, "number": 300, "name": "wheel",
                                    "coverage": 0.05},
                                   {**c_row, "code": 3, "number": 520, "name": "grass",
                                    "coverage": 0.1}])
    _write(root / "c_part.csv", [{**c_row, "code": 1, "number": 300, "name": "wheel",
                                  "coverage": 0.125}])
    _write(root / "c_scene.csv", [{**c_row, "code": 1, "number": 301, "name": "street-s",
                                   "coverage": 1.0}])
    return root


def test_broden_decodes_labels_above_255_and_uses_primary_categories(broden: Path):
    cs = read_broden(str(broden))
    names = {c.name: c.category for c in cs.concepts}
    # wheel has more coverage as a part; Broden's "color" is our "colour"
    assert names == {"red-c": "colour", "sky": "object", "wheel": "part",
                     "street-s": "scene", "grass": "object"}
    assert cs.ids == ["a.jpg", "b.jpg", "c.jpg"]
    labels = cs.labels(0)
    assert labels.pixels.shape == (3, 4, 4)  # color, object, part planes
    obj = labels.pixels[1]
    # 300 = 44 + 256 * 1 and 520 = 8 + 256 * 2: uint8 arithmetic would give 45 and 10
    assert (obj[2, :2] == cs.number("wheel")).all() and (obj[3, :2] == cs.number("grass")).all()
    assert (obj[:2] == cs.number("sky")).all() and (obj[2:, 2:] == 0).all()
    assert (labels.pixels[2][2, :2] == cs.number("wheel")).all()
    assert labels.whole == (cs.number("street-s"),)
    assert labels.categories == {"colour", "object", "part", "scene"}
    assert cs.labels(1).categories == {"colour"} and cs.labels(1).whole == ()


def test_broden_split_and_category_filters(broden: Path):
    val = read_broden(str(broden), split="val")
    assert val.ids == ["c.jpg"]
    objects = read_broden(str(broden), categories=["object"])
    assert objects.ids == ["a.jpg"]  # the others have no object annotation
    # wheel's only category now is object; pixels of other categories read as 0
    assert {c.name: c.category for c in objects.concepts} == {
        "sky": "object", "wheel": "object", "grass": "object"}
    assert objects.labels(0).pixels.shape == (1, 4, 4)
    assert np.asarray(objects.image(0)).shape == (8, 8, 3)


def test_broden_errors_name_the_problem(broden: Path, tmp_path: Path):
    with pytest.raises(DataError, match="not a Broden folder"):
        read_broden(str(tmp_path))  # holds the Broden folder but no csv files itself
    with pytest.raises(ZooError, match="no categories"):
        read_broden(str(broden), categories=["texture"])
    _png(broden / "images" / "a_object.png", np.full((4, 4), 777))  # not in label.csv
    with pytest.raises(DataError, match="777"):
        read_broden(str(broden)).labels(0)


def test_concept_sources_resolve_names_and_paths(broden: Path):
    assert len(open_concepts("synthetic:3")) == 3
    assert open_concepts(str(broden)).ids == read_broden(str(broden)).ids
    assert open_concepts(f"broden:{broden}").name == f"broden:{broden}"
    assert open_concepts("colour:synthetic:2").concepts[0].category == "colour"
    with pytest.raises(UnknownNameError, match="nope"):
        open_concepts("nope")
    with pytest.raises(ZooError, match="image count"):
        open_concepts("synthetic:x")


def test_a_plugin_can_register_a_concept_source(monkeypatch: pytest.MonkeyPatch):
    from zoo.concepts import ConceptSource, register_concept_source, sources

    monkeypatch.setattr(sources, "_SOURCES", {})
    register_concept_source(ConceptSource(
        "tiny", lambda arg: synthetic_concepts(int(arg or 1), size=16), "test source"))
    assert len(open_concepts("tiny:3")) == 3
    with pytest.raises(ZooError, match="already registered"):
        register_concept_source(ConceptSource("synthetic", lambda arg: None))
