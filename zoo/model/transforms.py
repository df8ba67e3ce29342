"""Image transforms run by the upstream library that defines each checkpoint's convention.

`InputConfig` says what was resolved (size, crop fraction, resize rule, filter, mean/std) and which
library runs it; `build_transform` returns that library's own eval transform (timm
`create_transform`, open_clip `image_transform`, torchvision's Resize/CenterCrop convention, or the
transformers image processor of a checkpoint folder), so zoo's input tensors are upstream's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import WeightsError
from zoo.registry.specs import InputConfig

PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def build_transform(cfg: InputConfig) -> Callable[[Sequence[Any]], Any]:
    """PIL images -> (N, 3, size, size) float32 tensor, by the library `cfg.library`."""
    import torch

    if cfg.library == "transformers":
        processor = _processor(cfg)
        return lambda images: processor(images=list(images),
                                        return_tensors="pt")["pixel_values"].float()
    one = _single_image_transform(cfg)
    return lambda images: torch.stack([one(im.convert("RGB")) for im in images])


def _single_image_transform(cfg: InputConfig) -> Callable[[Any], Any]:
    if cfg.library == "timm":
        from timm.data import create_transform

        return create_transform(input_size=(3, cfg.size, cfg.size), is_training=False,
                                interpolation=cfg.interpolation, mean=cfg.mean, std=cfg.std,
                                crop_pct=cfg.crop_pct,
                                crop_mode="squash" if cfg.resize == "squash" else "center")
    if cfg.library == "open_clip":
        import open_clip

        return open_clip.image_transform(cfg.size, is_train=False, mean=cfg.mean, std=cfg.std,
                                         resize_mode=cfg.resize, interpolation=cfg.interpolation)
    from torchvision import transforms as T

    mode = T.InterpolationMode(cfg.interpolation)
    edge = cfg.resize_size
    return T.Compose([T.Resize(edge if cfg.resize == "shortest" else (edge, edge),
                               interpolation=mode),
                      T.CenterCrop(cfg.size), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])


def processor_input(folder: str | Path) -> InputConfig:
    """The InputConfig a transformers checkpoint folder's preprocessor_config.json describes
    (centre-cropping processors: shortest edge + crop; others: squash to height x width)."""
    path = Path(folder) / "preprocessor_config.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{folder}: no readable preprocessor_config.json ({exc})") from None
    size = raw.get("size") or {}
    if raw.get("do_center_crop") and raw.get("crop_size"):
        crop = raw["crop_size"]
        side = crop["height"] if isinstance(crop, dict) else int(crop)
        edge = size.get("shortest_edge", side) if isinstance(size, dict) else int(size)
        crop_pct, resize = side / edge, "shortest"
    else:
        side = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
        crop_pct, resize = 1.0, "squash"
    return InputConfig(size=int(side), mean=tuple(raw["image_mean"]), std=tuple(raw["image_std"]),
                       interpolation=PIL_FILTERS.get(raw.get("resample", 2), "bilinear"),
                       crop_pct=crop_pct, resize=resize, library="transformers",
                       processor=str(folder))


def _processor(cfg: InputConfig) -> Any:
    """The folder's AutoImageProcessor (offline), with zoo's size / crop_pct overrides applied."""
    from transformers import AutoImageProcessor

    kwargs: dict[str, Any] = {}
    if cfg.override and cfg.resize == "squash":
        if cfg.crop_pct != 1.0:
            raise WeightsError(f"{cfg.processor}: its processor squashes without cropping; "
                               "crop_pct cannot be set")
        kwargs["size"] = {"height": cfg.size, "width": cfg.size}
    elif cfg.override:
        kwargs.update(size={"shortest_edge": cfg.resize_size},
                      crop_size={"height": cfg.size, "width": cfg.size})
    return AutoImageProcessor.from_pretrained(cfg.processor, local_files_only=True, **kwargs)
