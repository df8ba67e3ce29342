"""Reference bands for a comparison: model B's random-init twin or seed twin, compared with A
on the same samples and layers, so every value of A vs B can be read against what the same
architecture gives without training (random-init) or from another seed (seed). A random-init B
is its own random-init twin, so its twin of either kind is another random init.

The twin's values go into each metric's stats as `twin_random_init` / `twin_seed` (a column of
`table()`), a note under every heatmap and in the report gives the band over A's layers, and
the report gets a figure: A's best match per layer in B against the best match in the twin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ZooError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from zoo.comparisons.comparison import Comparison
    from zoo.data.dataset import Dataset
    from zoo.features.cache import FeatureCache
    from zoo.model.base import ZooModel
    from zoo.progress import Progress

BASELINES = ("random-init", "seed")
TWIN_SEED = 1  # a seed twin of a random-init model is initialised from this seed (zoo's is 0)


@contextlib.contextmanager
def init_seed(seed: int) -> Iterator[None]:
    """Random init (zoo.model.weights.build_seeded, and the random-init fingerprint that keys the
    feature cache) from `seed` inside the block."""
    from zoo.model import weights

    before = weights.RANDOM_INIT_SEED
    weights.RANDOM_INIT_SEED = seed
    try:
        yield
    finally:
        weights.RANDOM_INIT_SEED = before


def make_twin(model: ZooModel, kind: str, weights: str | None = None, **options: Any
              ) -> ZooModel:
    """`model`'s random-init twin, or its seed twin: `weights` (the same model trained from
    another seed). For a random-init model both are the same architecture initialised from
    TWIN_SEED (random weights other than its own: its random-init twin cannot be itself)."""
    from zoo.model.loading import load_model as load

    if kind not in BASELINES:
        raise ZooError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")
    device = str(model.device)
    if model.input != model.spec.input:  # the user's size / crop_pct reach the twin too
        options = {"size": model.input.size, "crop_pct": model.input.crop_pct, **options}
    if kind == "random-init" and not model.random_init:
        return load(model.spec, random_init=True, device=device, **options)
    if kind == "seed" and weights:
        return load(model.spec, weights=weights, device=device, **options)
    if not model.random_init:
        raise ZooError(f"a seed twin of {model.id}'s trained weights is the same model trained "
                       "from another seed: pass its checkpoint with --baseline-weights PATH")
    with init_seed(TWIN_SEED):
        twin = load(model.spec, random_init=True, device=device, **options)
    if all(_same(p, q) for p, q in zip(model.module.state_dict().values(),
                                       twin.module.state_dict().values())):
        way_out = ("compare it with trained weights (--weights)" if kind == "random-init"
                   else "pass --baseline-weights PATH")
        raise ZooError(f"{model.id} does not take zoo's init seed (its random init is fixed), "
                       f"so it has no {kind} twin other than itself; {way_out}")
    return twin


def _same(p: Any, q: Any) -> bool:
    import torch

    return bool(torch.equal(p.cpu(), q.cpu()))


def add_baseline(c: Comparison, twin: ZooModel, kind: str, dataset: Dataset, *,
                 batch_size: int = 16, cache: FeatureCache | None = None,
                 progress: Progress | None = None) -> None:
    """Compare A with B's `kind` twin (`make_twin`) on the same samples and B's layers, and add
    the band to `c`."""
    from zoo.comparisons.comparison import compare
    from zoo.features.featureset import extract_set

    twin_set = extract_set(twin, dataset, list(c.b.names), c.reduction, batch_size, cache,
                           progress)
    band = compare(c.a, twin_set, [r.metric for r in c.results.values()], progress=progress)
    key = "twin_" + kind.replace("-", "_")
    what = twin_description(kind, c.b.random_init)
    for name, r in c.results.items():
        values = band.results[name].values
        r.stats[key] = values
        best = _best_per_row(values, r.metric.kind)
        if np.isfinite(best).any():
            r.notes.append(f"Reference band ({kind} twin of {c.b.label}: {what}): A's best "
                           f"match in the twin scores {np.nanmin(best):.3f}-"
                           f"{np.nanmax(best):.3f} over A's layers (column {key}).")
    c.sections.append((f"Reference band: {kind} twin of {c.b.label}",
                       _band_html(c, key, kind)))


def twin_description(kind: str, b_random_init: bool) -> str:
    """What the twin is, in words: a random-init model's twin of either kind is another random
    init (init seed TWIN_SEED), since the model is already its own random-init twin."""
    if b_random_init:
        return (f"B is itself random-init, so the twin is another random init (init seed "
                f"{TWIN_SEED})")
    return ("same architecture, random weights" if kind == "random-init"
            else "same architecture trained from another seed")


def _best_per_row(values: np.ndarray, kind: str) -> np.ndarray:
    """Each row's best value (max for a similarity, min for a distance), NaN if all undefined."""
    out = np.full(len(values), np.nan)
    for i, row in enumerate(values):
        if np.isfinite(row).any():
            out[i] = np.nanmax(row) if kind == "similarity" else np.nanmin(row)
    return out


def band_figure(c: Comparison, key: str, kind: str) -> Figure:
    """Per metric: A's best match per layer in B (line) and in the twin (shaded band to 0 or the
    axis), so a value inside the band is what the twin already gives."""
    from matplotlib.figure import Figure

    names = list(c.results)
    fig = Figure(figsize=(max(6, 0.35 * len(c.a.names) + 2), 2.4 * len(names)))
    for k, name in enumerate(names):
        r = c.results[name]
        ax = fig.add_subplot(len(names), 1, k + 1)
        x = np.arange(len(c.a.names))
        twin = _best_per_row(r.stats[key], r.metric.kind)
        ax.fill_between(x, twin, np.nanmin(twin) if r.metric.kind == "distance" else 0,
                        color="0.8", label=f"{kind} twin of B")
        ax.plot(x, _best_per_row(r.values, r.metric.kind), "o-", label=c.b.label)
        ax.set_ylabel(f"best {name}")
        ax.set_xticks(x, c.a.names if k == len(names) - 1 else [""] * len(x), rotation=90,
                      fontsize=7)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{c.a.label}: best match per layer\nin {c.b.label} vs its {kind} twin",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _band_html(c: Comparison, key: str, kind: str) -> str:
    """The band figure inlined as a PNG, with one sentence on how to read it."""
    import base64
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(band_figure(c, key, kind)).print_png(buffer)
    data = base64.b64encode(buffer.getvalue()).decode()
    return (f"<p>Grey: A's best match per layer in the {kind} twin of B "
            f"({twin_description(kind, c.b.random_init)}); a value of A vs B inside the band is "
            f"what the twin already gives. Per pair: column {key}.</p>"
            f"<img src='data:image/png;base64,{data}' alt='reference band'>")
