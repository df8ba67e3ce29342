"""What `zoo info` says about a model's weights without loading them: every cache entry it looks
up, whether it is there, its format and the transform it gets, and which one a load uses now.

The choice is `zoo.model.weights.resolve_weights`' (first found, or `--weights-source`), and each
transform is the family's `ModelSpec.input_for`, the function its loader uses, so what info
shows is what a load runs. A cache entry's format is the one published under its name; a
family may still read a file as another format when its layout says so (MAE's `{'model': ...}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import WeightsError
from zoo.model.weights import CachedWeights, resolve_weights
from zoo.registry.specs import InputConfig, ModelSpec

PROCESSOR_FORMATS = ("transformers", "transformers folder")


@dataclass(frozen=True)
class Candidate:
    """One cache entry of a model: `found` path or None, whether a load uses it now (`chosen`),
    and its transform (None with `note` saying why it cannot be told without the files)."""

    entry: str
    format: str
    found: str | None
    chosen: bool
    input: InputConfig | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (`input` as InputConfig.key, `transform` as its description)."""
        return {"entry": self.entry, "format": self.format, "found": self.found,
                "chosen": self.chosen, "input": self.input.key() if self.input else None,
                "transform": self.input.describe() if self.input else self.note}


@dataclass(frozen=True)
class WeightsPlan:
    """The weights a load of `spec` uses now (`chosen`: None when none is found) and the
    transform it runs (`input`: the chosen source's, else the family's random-init one; None
    when the chosen source's cannot be told, as its `note` says)."""

    spec: ModelSpec
    candidates: list[Candidate]
    input: InputConfig | None

    @property
    def chosen(self) -> Candidate | None:
        return next((c for c in self.candidates if c.chosen), None)


def weights_plan(spec: ModelSpec, size: int | None = None, crop_pct: float | None = None,
                 source: str | None = None) -> WeightsPlan:
    """Each of `spec`'s cache entries with its format and transform (`size` / `crop_pct`
    applied), and the one a load picks now (`source`: as --weights-source)."""
    try:
        picked = resolve_weights(spec.id, None, False, spec.sources, source=source).path
    except WeightsError:
        if source:
            raise
        picked = None
    candidates = [_candidate(spec, entry, picked, size, crop_pct) for entry in spec.sources]
    chosen = next((c for c in candidates if c.chosen), None)
    default = spec.input.with_overrides(size, crop_pct)
    return WeightsPlan(spec, candidates, chosen.input if chosen else default)


def _candidate(spec: ModelSpec, entry: CachedWeights, picked: Path | None, size: int | None,
               crop_pct: float | None) -> Candidate:
    hit = entry.find()
    chosen = hit is not None and hit == picked
    if spec.input_for is None:
        cfg, note = spec.input, ""
    elif entry.format in PROCESSOR_FORMATS and hit is None:
        cfg, note = None, "its folder's image processor (preprocessor_config.json)"
    else:
        try:
            cfg, note = spec.input_for(entry.format, hit), ""
        except WeightsError as exc:
            cfg, note = None, f"cannot tell: {exc}"
    return Candidate(entry.describe(), entry.format, str(hit) if hit else None, chosen,
                     cfg.with_overrides(size, crop_pct) if cfg else None, note)
