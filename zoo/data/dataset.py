"""The data record: an ordered, fingerprinted set of images (and masks) keyed by sample id, and
the one faithful decoder every image goes through (`to_rgb`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zoo.errors import DataError, ZooError


class DataChanged(DataError):
    """An image's bytes differ from those the dataset was fingerprinted with."""


class Dataset:
    """An ordered, fingerprinted set of images with optional binary masks.

    `loaders[i]()` returns sample i's PIL image; `mask_loaders[i]()` (if any) its mask as a bool
    array. The fingerprint changes whenever any pixel could have changed.
    """

    def __init__(self, name: str, ids: Sequence[str], loaders: Sequence[Callable[[], Any]],
                 fingerprint: str, mask_loaders: Sequence[Callable[[], np.ndarray]] | None = None,
                 origin: Sequence[str] | None = None) -> None:
        self.name = name
        self.ids = list(ids)
        self._loaders = list(loaders)
        self._masks = list(mask_loaders) if mask_loaders is not None else None
        self._origin = list(origin) if origin is not None else list(ids)
        self.fingerprint = fingerprint
        self.origin_fingerprint = fingerprint  # the whole set's, kept by subsets (pairing)
        self.skipped: list[str] = []
        self.unlisted: list[str] = []  # folders that could not be read (only under --skip-bad)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_masks(self) -> bool:
        return self._masks is not None

    def image(self, i: int) -> Any:
        """Sample i as an RGB PIL image; an unreadable file is a `DataError` naming it."""
        try:
            return to_rgb(self._loaders[i]())
        except DataChanged:
            raise
        except DataError as exc:
            raise DataError(f"image {self._origin[i]}: {exc}; fix or remove it, or pass "
                            "--skip-bad to skip unreadable images") from None
        except ZooError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad file
            raise DataError(f"cannot read image {self._origin[i]}: {exc}; fix or remove it, "
                            "or pass --skip-bad to skip unreadable images") from None

    def mask(self, i: int) -> np.ndarray:
        """Sample i's binary mask (H, W) bool."""
        if self._masks is None:
            raise DataError(f"dataset {self.name} has no masks")
        return self._masks[i]()

    def subset(self, indices: Sequence[int], name: str | None = None) -> Dataset:
        """The samples at `indices`, keyed and fingerprinted as a new dataset."""
        idx = list(indices)
        fp = digest({"parent": self.fingerprint, "ids": [self.ids[i] for i in idx]})
        masks = [self._masks[i] for i in idx] if self._masks is not None else None
        out = Dataset(name or self.name, [self.ids[i] for i in idx],
                      [self._loaders[i] for i in idx], fp, masks, [self._origin[i] for i in idx])
        out.origin_fingerprint = self.origin_fingerprint
        return out

    def without_unreadable(self) -> Dataset:
        """A copy without the images that fail to decode; `.skipped` lists their ids and the
        folders that could not be listed."""
        good, bad = [], list(self.unlisted)
        for i in range(len(self)):
            try:
                self.image(i)
                good.append(i)
            except DataError:
                bad.append(self.ids[i])
        out = self.subset(good)
        out.skipped = bad
        return out


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object: the fingerprint of a dataset description."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# How `to_rgb` maps the modes whose values do not already span 0..255 (see the README).
_HIGH_RANGE = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
               "I": 65535.0, "F": 1.0}


def to_rgb(image: Any) -> Any:
    """A decoded PIL image as 8-bit RGB, faithfully, whatever its mode.

    EXIF orientation is applied first. 16-bit and 32-bit integer modes are scaled from
    0..65535, float images from 0..1 (values outside that range are an error, never clipped
    silently), then grey becomes RGB. 8-bit modes (1, L, P, LA, PA, RGBA, CMYK, YCbCr, HSV, ...)
    use Pillow's conversion; alpha is dropped, as timm and torchvision do. An upright RGB
    image is returned as it is (not copied).
    """
    from PIL import ExifTags, Image, ImageOps

    image.load()
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # else exif_transpose copies
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":  # already what is asked: no copy
        return image
    if image.mode in _HIGH_RANGE:
        top = _HIGH_RANGE[image.mode]
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > top:
            raise DataError(f"{image.mode} image values span {np.nanmin(values):g}.."
                            f"{np.nanmax(values):g}, outside the mode's range 0..{top:g}; "
                            "save it as 8- or 16-bit")
        grey = np.round(values * (255.0 / top)).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "LAB":
        from PIL import ImageCms

        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"),
                                            ImageCms.createProfile("sRGB"), "LAB", "RGB")
        return ImageCms.applyTransform(image, transform)
    if image.mode in ("La", "RGBa"):
        image = image.convert(image.mode.upper())
    return image.convert("RGB")
