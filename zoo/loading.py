"""Loading the several models of one command at once, so that every model without weights is
named in one error with the ways forward (not only the first one that fails)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.weights import MissingWeights

if TYPE_CHECKING:
    from zoo.model import ZooModel


def load_models(names: Sequence[str], weights: Mapping[str, str] | None = None, *,
                random_init: bool = False, device: str = "cpu",
                **options: Any) -> list[ZooModel]:
    """`zoo.load` of each name (a name given twice is loaded once), `weights` per name; the
    models that have no weights are named together in one `MissingWeights` error."""
    from zoo.api import load

    loaded: dict[str, ZooModel] = {}
    missing: MissingWeights | None = None
    for name in dict.fromkeys(names):
        try:
            loaded[name] = load(name, weights=(weights or {}).get(name),
                                random_init=random_init, device=device, **options)
        except MissingWeights as exc:
            missing = exc if missing is None else missing.merged(exc)
    if missing is not None:
        raise missing
    return [loaded[name] for name in names]
