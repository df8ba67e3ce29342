"""Named concept sources (`--concepts`): built-ins plus any a plugin registers.

`synthetic[:N]` the generated set, `broden:PATH` (or a Broden folder path) a Broden folder,
`colour:DATA` pixel colour names over any `--data` image source. A plugin adds a source (e.g. a
segmentation model that labels images) with `register_concept_source`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.concepts.labels import ConceptSet
from zoo.errors import UnknownNameError, ZooError


@dataclass(frozen=True)
class ConceptSource:
    """A way to build a `ConceptSet`; `open(arg)` gets the text after `name:` (or None)."""

    name: str
    open: Callable[[str | None], ConceptSet]
    description: str = ""


_SOURCES: dict[str, ConceptSource] = {}


def register_concept_source(source: ConceptSource) -> None:
    """Make `source` available as `--concepts NAME[:ARG]`; a name can be registered once."""
    if source.name in concept_sources():
        raise ZooError(f"concept source {source.name!r} is already registered")
    _SOURCES[source.name] = source


def _synthetic(arg: str | None) -> ConceptSet:
    from zoo.concepts.synthetic import synthetic_concepts

    if not arg:
        return synthetic_concepts()
    if not arg.isdigit() or int(arg) < 1:
        raise ZooError(f"concept source 'synthetic' takes an image count, e.g. synthetic:64 "
                       f"(got {arg!r})")
    return synthetic_concepts(int(arg))


def _broden(arg: str | None) -> ConceptSet:
    from zoo.concepts.broden import read_broden

    if not arg:
        raise ZooError("concept source 'broden' needs a folder: --concepts broden:PATH")
    return read_broden(arg)


def _colour(arg: str | None) -> ConceptSet:
    from zoo.concepts.colours import colour_concepts
    from zoo.data.resolve import open_dataset

    if not arg:
        raise ZooError("concept source 'colour' needs images: --concepts colour:DATA, e.g. "
                       "colour:samples or colour:PATH")
    return colour_concepts(open_dataset(arg))


BUILTIN = (
    ConceptSource("synthetic", _synthetic, "generated objects made of parts, materials as "
                  "textures and colours, with exact masks (synthetic:N images, default 64)"),
    ConceptSource("broden", _broden, "a Broden-format folder (broden:PATH)"),
    ConceptSource("colour", _colour, "the 11 colour names of every pixel of any image source "
                  "(colour:DATA, e.g. colour:samples)"),
)


def concept_sources() -> dict[str, ConceptSource]:
    """Every registered concept source by name, built-ins first."""
    return {**{s.name: s for s in BUILTIN}, **_SOURCES}


def open_concepts(spec: str) -> ConceptSet:
    """Resolve `--concepts`: `name[:arg]` of a registered source, or a Broden folder path."""
    sources = concept_sources()
    name, _, arg = spec.partition(":")
    if name in sources:
        return sources[name].open(arg or None)
    if (Path(spec).expanduser() / "index.csv").is_file():
        return sources["broden"].open(spec)
    raise UnknownNameError("concept source", spec, sources,
                           "Pass synthetic[:N], broden:PATH, colour:DATA or a Broden folder")
