"""The built-in datasets, registered as an ordinary plugin: the bundled photographs, the
synthetic sets, a folder of images and the ISIC 2018 layout."""

from __future__ import annotations

from collections.abc import Callable

from zoo.data.sources import LESIONS, bundled_samples, image_folder, isic_folder, lesions, synthetic
from zoo.registry.hookspecs import hookimpl
from zoo.registry.specs import DatasetSpec


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec("samples", bundled_samples, "16 real photographs bundled with "
                         "scikit-image and scikit-learn (no download)"))
    register(DatasetSpec("synthetic", synthetic, "deterministic coloured blobs on textured "
                         "backgrounds with exact masks; synthetic:N for N images"))
    register(DatasetSpec("lesions", lesions, "synthetic binary segmentation set (ISIC stand-in): "
                         "lesion-like blobs on skin texture, exact masks; lesions:N (default "
                         f"{LESIONS}), lesions:test (the demo's held-out split)"))
    register(DatasetSpec("folder", image_folder, "every image under a folder, recursively; "
                         "folder:PATH or just PATH", needs_path=True))
    register(DatasetSpec("isic", isic_folder, "ISIC 2018 task-1 layout with ground-truth masks; "
                         "isic:PATH", needs_path=True))
