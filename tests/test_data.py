"""Data sources: folders, the ISIC layout, bundled samples, synthetic sets, bad images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.data import image_folder, isic_folder, open_dataset, split_of, synthetic
from zoo.errors import DataError, UnknownNameError


def _png(path, value: int = 128, size=(8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def test_folder_is_recursive_sorted_and_keyed_by_relative_path(tmp_path):
    _png(tmp_path / "b.png")
    _png(tmp_path / "a" / "z.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = image_folder(str(tmp_path))
    assert ds.ids == ["a/z.png", "b.png"]
    assert ds.image(0).size == (8, 6)


def test_folder_fingerprint_changes_when_a_file_changes(tmp_path):
    _png(tmp_path / "a.png", 1)
    before = image_folder(str(tmp_path)).fingerprint
    _png(tmp_path / "a.png", 2, size=(9, 6))
    assert image_folder(str(tmp_path)).fingerprint != before


def test_corrupt_image_is_named_or_skipped(tmp_path):
    _png(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    ds = image_folder(str(tmp_path))
    with pytest.raises(DataError, match="bad.jpg.*skip_bad=True"):
        ds.image(ds.ids.index("bad.jpg"))
    clean = ds.without_unreadable()
    assert clean.ids == ["good.png"] and clean.skipped == ["bad.jpg"]
    assert clean.fingerprint != ds.fingerprint


def test_isic_layout_pairs_images_with_masks(tmp_path):
    for split, (inp, gt) in {"train": ("ISIC2018_Task1-2_Training_Input",
                                       "ISIC2018_Task1_Training_GroundTruth"),
                             "test": ("ISIC2018_Task1-2_Test_Input",
                                      "ISIC2018_Task1_Test_GroundTruth")}.items():
        for k in range(2):
            _png(tmp_path / inp / f"ISIC_000{k}.jpg")
            mask = np.zeros((6, 8), np.uint8)
            mask[:3] = 255
            (tmp_path / gt).mkdir(exist_ok=True)
            Image.fromarray(mask).save(tmp_path / gt / f"ISIC_000{k}_segmentation.png")
    ds = open_dataset(str(tmp_path))  # the layout is recognised from a plain path too
    assert ds.ids == ["train/ISIC_0000", "train/ISIC_0001", "test/ISIC_0000", "test/ISIC_0001"]
    assert [split_of(i) for i in ds.ids] == ["train", "train", "test", "test"]
    assert ds.mask(0).dtype == bool and ds.mask(0)[:3].all() and not ds.mask(0)[3:].any()


def test_isic_missing_mask_is_an_error(tmp_path):
    _png(tmp_path / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000001.jpg")
    with pytest.raises(DataError, match="no ground-truth mask"):
        isic_folder(str(tmp_path))


def test_bundled_samples_are_real_photographs():
    ds = open_dataset("samples")
    assert len(ds) == 16 and "skimage/astronaut" in ds.ids
    im = ds.image(ds.ids.index("skimage/astronaut"))
    assert im.size == (512, 512) and im.mode == "RGB"
    assert np.asarray(im).std() > 20  # a photograph, not a blank


def test_synthetic_is_deterministic_with_exact_masks():
    a, b = synthetic("6"), synthetic("6")
    assert a.fingerprint == b.fingerprint and len(a) == 6
    np.testing.assert_array_equal(np.asarray(a.image(3)), np.asarray(b.image(3)))
    mask = a.mask(3)
    assert 0 < mask.mean() < 1


def test_unknown_data_names_the_choices():
    with pytest.raises(UnknownNameError, match="samples"):
        open_dataset("/no/such/folder")
