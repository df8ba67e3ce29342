"""The folder scanner stays inside --data (a link out of it is refused, never followed into
the parent) and turns file names that are not valid UTF-8 into printable, unique sample ids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import DataError


def _png(path: Path | bytes, seed: int) -> None:
    from PIL import Image

    pixels = (np.random.default_rng(seed).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.fsdecode(path) if isinstance(path, bytes) else path,
                                 format="PNG")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """parent/{outside.png, data/{a.png, sub/b.png}}."""
    data = tmp_path / "parent" / "data"
    (data / "sub").mkdir(parents=True)
    _png(tmp_path / "parent" / "outside.png", 0)
    _png(data / "a.png", 1)
    _png(data / "sub" / "b.png", 2)
    return data


def test_a_link_to_the_parent_is_refused_not_followed(tree):
    from zoo.data.resolve import open_dataset

    (tree / "up").symlink_to("..")
    with pytest.raises(DataError, match="leads outside") as info:
        open_dataset(str(tree))
    assert "up" in str(info.value)
    skipped = open_dataset(str(tree), skip_bad=True)
    assert skipped.ids == ["a.png", "sub/b.png"]  # never parent/outside.png
    assert any(s.endswith("up") for s in skipped.skipped)


def test_a_link_to_a_sibling_folder_is_refused(tree):
    from zoo.data.resolve import open_dataset

    other = tree.parent / "other"
    other.mkdir()
    _png(other / "c.png", 3)
    (tree / "more").symlink_to(other)
    with pytest.raises(DataError, match="leads outside"):
        open_dataset(str(tree))


def test_links_inside_the_folder_are_followed_once(tree):
    from zoo.data.resolve import open_dataset

    (tree / "alias").symlink_to("sub")
    (tree / "sub" / "loop").symlink_to("..")
    ids = open_dataset(str(tree)).ids
    assert sorted(ids) == ["a.png", "alias/b.png"] or sorted(ids) == ["a.png", "sub/b.png"]


def test_data_given_as_a_link_is_scanned_where_it_points(tree, tmp_path):
    from zoo.data.resolve import open_dataset

    (tmp_path / "link").symlink_to(tree)
    assert open_dataset(str(tmp_path / "link")).ids == ["a.png", "sub/b.png"]


def test_non_utf8_file_names_become_printable_unique_ids(tmp_path):
    from zoo.data.resolve import open_dataset

    folder = tmp_path / "raw"
    folder.mkdir()
    _png(os.fsencode(folder) + b"/\xff\xfe.png", 4)
    _png(os.fsencode(folder) + b"/\xfe\xff.png", 5)
    _png(folder / "plain.png", 6)
    data = open_dataset(str(folder))
    assert len(set(data.ids)) == 3
    for sid in data.ids:
        sid.encode("utf-8")  # no surrogates: every writer (JSON, HTML, figures) can write it
    assert "\\xff\\xfe.png" in data.ids
    assert data.image(data.ids.index("\\xff\\xfe.png")).size == (16, 16)


def test_a_figure_labelled_with_a_non_utf8_name_is_written(tmp_path):
    """The crash seen in `zoo cut`: matplotlib cannot draw a surrogate-escaped name."""
    from matplotlib.figure import Figure

    from zoo.data.resolve import open_dataset

    folder = tmp_path / "raw"
    folder.mkdir()
    _png(os.fsencode(folder) + b"/\xff.png", 7)
    data = open_dataset(str(folder))
    fig = Figure()
    fig.suptitle(data.ids[0])
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
