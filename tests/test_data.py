"""Data sources: folders, the ISIC layout, bundled samples, synthetic sets, bad images; decoding
is faithful for every Pillow mode, and no file or folder is skipped silently."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo.data.sources
from zoo.data.dataset import to_rgb
from zoo.data.resolve import open_dataset
from zoo.data.sources import image_folder, isic_folder, split_of, synthetic
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
    for _, (inp, gt) in {"train": ("ISIC2018_Task1-2_Training_Input",
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


RAMP = np.tile(np.linspace(0, 1, 64), (16, 1))  # a left-to-right grey ramp, 0..1


def _grey(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(to_rgb(image), dtype=np.float64)
    assert rgb.shape[2] == 3
    return rgb.mean(axis=2) / 255


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_images_keep_their_grey_levels(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(np.round(RAMP * 65535).astype(np.uint16)).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
        np.testing.assert_allclose(_grey(im), RAMP, atol=1 / 255)


def test_float_tiff_in_0_1_is_not_black(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(RAMP.astype(np.float32)).save(path)
    with Image.open(path) as im:
        assert im.mode == "F"
        np.testing.assert_allclose(_grey(im), RAMP, atol=1 / 255)


def test_out_of_range_float_image_is_an_error_naming_the_file(tmp_path):
    Image.fromarray((RAMP * 300).astype(np.float32)).save(tmp_path / "hot.tif")
    with pytest.raises(DataError, match=r"hot\.tif.*outside the mode's range 0\.\.1"):
        image_folder(str(tmp_path)).image(0)


def test_32_bit_integer_mode_is_read_as_16_bit():
    im = Image.fromarray(np.round(RAMP * 65535).astype(np.int32))
    assert im.mode == "I"
    np.testing.assert_allclose(_grey(im), RAMP, atol=1 / 255)


def test_eight_bit_modes_convert_like_pillow():
    rgb = Image.fromarray((np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8))
    for mode in ("1", "L", "P", "LA", "PA", "RGBA", "CMYK", "YCbCr", "HSV", "RGBX"):
        im = rgb.convert(mode)
        np.testing.assert_array_equal(np.asarray(to_rgb(im)), np.asarray(im.convert("RGB")),
                                      err_msg=mode)


def test_lab_images_are_converted_colorimetrically():
    white = Image.new("LAB", (2, 2), (255, 128, 128))  # L=100, a=b=0: white
    assert np.asarray(to_rgb(white)).min() >= 250


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :10] = 255  # white on the left of a landscape frame
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display" as phones write it
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = np.asarray(image_folder(str(tmp_path)).image(0))
    assert shown.shape[:2] == (30, 10)  # portrait, as a viewer shows it
    assert shown[:10].mean() > 200 and shown[-10:].mean() < 50  # white ends up on top


def _tree(root: Path) -> None:
    for name in ("a/1.png", "a/2.png", "b/3.png", "b/4.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (9, 9, 9)).save(root / name)


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make `folder` unlistable even for root (os.walk lists folders with os.scandir)."""
    real = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_subfolder_is_an_error_not_a_silent_drop(tmp_path, monkeypatch):
    _tree(tmp_path)
    _deny(monkeypatch, tmp_path / "b")
    with pytest.raises(DataError,
                       match=r"cannot read folder .*b: Permission denied.*skip_bad=True"):
        open_dataset(str(tmp_path))
    kept = open_dataset(str(tmp_path), skip_bad=True)
    assert kept.ids == ["a/1.png", "a/2.png"]
    assert kept.skipped == [str(tmp_path / "b")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_subfolder_by_permissions(tmp_path):
    _tree(tmp_path)
    (tmp_path / "b").chmod(0)
    try:
        with pytest.raises(DataError, match="cannot read folder"):
            image_folder(str(tmp_path))
    finally:
        (tmp_path / "b").chmod(0o755)


def test_skip_bad_names_undecodable_files(tmp_path):
    _tree(tmp_path)
    (tmp_path / "a" / "2.png").write_bytes(b"not a png")
    kept = open_dataset(str(tmp_path), skip_bad=True)
    assert kept.ids == ["a/1.png", "b/3.png", "b/4.png"] and kept.skipped == ["a/2.png"]
    with pytest.raises(DataError, match="no readable images"):
        (tmp_path / "only").mkdir()
        (tmp_path / "only" / "x.png").write_bytes(b"junk")
        open_dataset(str(tmp_path / "only"), skip_bad=True)


def test_same_size_same_mtime_replacement_changes_the_fingerprint(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    stat = path.stat()
    before = image_folder(str(tmp_path)).fingerprint
    raw = bytearray(path.read_bytes())
    Image.new("RGB", (8, 8), (10, 20, 31)).save(path)
    assert len(path.read_bytes()) == len(raw)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert image_folder(str(tmp_path)).fingerprint != before


def test_file_hashes_are_remembered_until_a_file_changes(tmp_path, monkeypatch):
    _tree(tmp_path)
    import time

    later = time.time_ns() + 10**10  # every file looks settled (not racy)
    monkeypatch.setattr(zoo.data.sources.time, "time_ns", lambda: later)
    reads = []
    real = zoo.data.sources._file_hash
    monkeypatch.setattr(zoo.data.sources, "_file_hash", lambda p: reads.append(p.name) or real(p))
    first = image_folder(str(tmp_path)).fingerprint
    assert len(reads) == 4
    assert image_folder(str(tmp_path)).fingerprint == first and len(reads) == 4
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "a" / "1.png")
    assert image_folder(str(tmp_path)).fingerprint != first
    assert reads[4:] == ["1.png"]
