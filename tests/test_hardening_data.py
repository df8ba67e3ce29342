"""Image decoding is faithful for every Pillow mode, and no file or folder is skipped silently."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo.data
from zoo.data import image_folder, open_dataset, to_rgb
from zoo.errors import DataError

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
    with pytest.raises(DataError, match=r"cannot read folder .*b: Permission denied.*skip_bad=True"):
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
    monkeypatch.setattr(zoo.data.time, "time_ns", lambda: later)
    reads = []
    real = zoo.data._file_hash
    monkeypatch.setattr(zoo.data, "_file_hash", lambda p: reads.append(p.name) or real(p))
    first = image_folder(str(tmp_path)).fingerprint
    assert len(reads) == 4
    assert image_folder(str(tmp_path)).fingerprint == first and len(reads) == 4
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "a" / "1.png")
    assert image_folder(str(tmp_path)).fingerprint != first
    assert reads[4:] == ["1.png"]
