"""The one layer selector every command and API call uses (`--layers`, `layers=`).

The rule: layers are names or globs (`block*`), comma-separated or a list, kept in model order.
Applied to several models at once, each pattern must match a layer of at least one of them and
each model must keep at least one layer; anything else is an error naming the model and the
close layer names. `None` selects every layer (or, with `keep`, every layer `keep` accepts).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence

from zoo.errors import UnknownNameError, ZooError

NO_GRID = "has no pixel grid (not a spatial layer: a vector, or tokens without a patch stride)"


def split_names(layers: str | Sequence[str] | None) -> list[str] | None:
    """`"a,b"` or `["a,b", "c"]` -> `["a", "b", "c"]`; None (or nothing) stays None."""
    if layers is None:
        return None
    items = [layers] if isinstance(layers, str) else layers
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise ZooError(f"layers=: expected names or globs (a string or a list of strings), "
                       f"got {layers!r}")
    return [p.strip() for item in items for p in item.split(",") if p.strip()] or None


def layer_matches(available: Sequence[str], pattern: str) -> list[str]:
    """The layer names that `pattern` (a name or a glob) selects, in model order."""
    return [n for n in available if fnmatch.fnmatchcase(n, pattern)]


def select_for(models: Mapping[str, Sequence[str]], patterns: Sequence[str] | None,
               keep: Callable[[str, str], bool] | None = None, what: str = "layer",
               excluded: str = "is not selectable here") -> dict[str, list[str]]:
    """Each model's selected layers (model id -> layer names in model order) under the rule in
    the module docstring. `keep(model, layer)` narrows the candidates first (e.g. layers with a
    pixel grid); `what` names them in errors, `excluded` says why a layer `keep` refuses is out
    ("has no pixel grid")."""
    candidates = {m: [n for n in names if keep is None or keep(m, n)]
                  for m, names in models.items()}
    chosen: dict[str, list[str]] = {}
    for model, names in candidates.items():
        if not patterns:
            chosen[model] = list(names)
            continue
        hits = {n for p in patterns for n in layer_matches(names, p)}
        chosen[model] = [n for n in names if n in hits]
    for pattern in patterns or []:
        if not any(layer_matches(names, pattern) for names in candidates.values()):
            refused = [(m, n) for m, names in models.items()
                       for n in layer_matches(names, pattern)]
            if refused:
                shown = ", ".join(f"{m}:{n}" for m, n in refused[:5])
                raise ZooError(f"{shown} {excluded}; pick from "
                               f"{', '.join(sorted({n for c in candidates.values() for n in c}))}")
            model = next(iter(models)) if len(models) == 1 else " or ".join(models)
            pool = sorted({n for names in candidates.values() for n in names})
            raise UnknownNameError(f"{what} of {model}", pattern, pool,
                                   f"See `zoo info {next(iter(models))}`")
    for model, names in chosen.items():
        if not names:
            shown = f"--layers {','.join(patterns)}" if patterns else "the defaults"
            raise ZooError(f"no {what} of {model} is selected by {shown}; pick from "
                           f"{', '.join(candidates[model][:20]) or '(none)'} (see `zoo info "
                           f"{model}`)")
    return chosen


def select_layers(available: Sequence[str], patterns: Sequence[str] | None,
                  model: str) -> list[str]:
    """One model's layers selected by `patterns` (None: all), in model order."""
    return select_for({model: list(available)}, patterns)[model]
