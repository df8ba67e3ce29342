"""Model build options shared by every command that loads a model (`--size`, `--crop-pct`,
`--weights-source`, `--trust-weights`), turned into the load options of zoo.plugin."""

from __future__ import annotations

from typing import Annotated, Any

import typer

SizeOpt = Annotated[int | None, typer.Option(
    "--size", min=1, help="input size in px (default: the checkpoint's; a multiple of the patch "
    "for ViTs, of 32 for unetpp/mask2former); recorded in the cache key and provenance")]
CropPctOpt = Annotated[float | None, typer.Option(
    "--crop-pct", min=0.01, max=1.0, help="centre-crop fraction: resize the short side to "
    "size / crop_pct, then crop size (default: the checkpoint's, e.g. 0.875 for Resize 256 / "
    "CenterCrop 224)")]
WeightsSourceOpt = Annotated[str | None, typer.Option(
    "--weights-source", help="which cached weights to use when several are found: text of its "
    "entry, e.g. 'torch hub' or 'facebook/dinov2-base' (`zoo info` lists them)")]
TrustWeightsOpt = Annotated[bool, typer.Option(
    "--trust-weights", help="allow full unpickling of a torch.save file that pickles more than "
    "tensors and plain values; runs code from the file: only for files you trust")]


def load_options(size: int | None = None, crop_pct: float | None = None,
                 source: str | None = None, trust: bool = False) -> dict[str, Any]:
    """The options given, as load options (`spec.load(**options)`), leaving out the unset ones."""
    options = {"size": size, "crop_pct": crop_pct, "source": source,
               "trust_weights": trust or None}
    return {k: v for k, v in options.items() if v is not None}
