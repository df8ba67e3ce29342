"""Names to datasets: `--data` as a registered name (`samples`, `synthetic:64`, `isic:PATH`) or a
folder, resolved through the plugin registry."""

from __future__ import annotations

from pathlib import Path

from zoo.data.dataset import Dataset
from zoo.data.sources import ISIC_SPLITS, SKIP_BAD, image_folder, isic_folder
from zoo.errors import DataError, UnknownNameError


def open_dataset(data: str, skip_bad: bool = False) -> Dataset:
    """Resolve `--data`: a registered name (`samples`, `synthetic:64`, `isic:PATH`) or a folder.

    With `skip_bad`, unreadable images and folders are dropped and named in `.skipped`;
    without it they are an error naming the first one.
    """
    token = SKIP_BAD.set(skip_bad)
    try:
        dataset = _resolve(data)
    finally:
        SKIP_BAD.reset(token)
    if not skip_bad:
        return dataset
    dataset = dataset.without_unreadable()
    if not len(dataset):
        raise DataError(f"no readable images in {data} ({len(dataset.skipped)} skipped, e.g. "
                        f"{dataset.skipped[:3]})")
    return dataset


def _resolve(data: str) -> Dataset:
    from zoo.registry.host import get_registry

    registry = get_registry()
    name, _, arg = data.partition(":")
    if name in registry.datasets:
        return registry.dataset(name).open(arg or None)
    path = Path(data).expanduser()
    if path.is_dir():
        if any((path / inp).is_dir() for inp, _ in ISIC_SPLITS.values()):
            return isic_folder(data)
        return image_folder(data)
    if path.exists():
        raise DataError(f"--data {data!r} is a file; pass a folder of images or a dataset name")
    raise UnknownNameError("dataset", data, registry.datasets,
                           "Pass a registered dataset or an existing image folder")


def as_dataset(spec: str | Dataset, *, skip_bad: bool = False) -> Dataset:
    """A `Dataset` as it is, or a data-source name or folder opened (see `open_dataset`); an
    empty result is an error."""
    if isinstance(spec, Dataset):
        return spec
    if not isinstance(spec, str):
        raise DataError(f"data=: expected a dataset name, an image folder or zoo.dataset(...), "
                        f"got {type(spec).__name__}")
    data = open_dataset(spec, skip_bad=skip_bad)
    if not len(data):
        raise DataError(f"no readable images in {spec}")
    return data
