"""PNG figures of dissection profiles and LCE embeddings (matplotlib, no pyplot global state).

Called by the CLI; the numeric library never draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.concepts.dissection import Dissection
from zoo.concepts.embedding import LCEResult
from zoo.report.figures import save_png


def _category_colours(categories: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {c: cmap(i % 10) for i, c in enumerate(sorted(set(categories)))}


def plot_profile(dissection: Dissection, title: str, path: Path, top: int = 30) -> Path:
    """Bar chart of the layer's profile (labelled units per concept), coloured by category."""
    from matplotlib.figure import Figure

    profile = sorted(dissection.profile().items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    names = [c for c, _ in profile]
    cats = [dissection.category_of(c) for c in names]
    colours = _category_colours(cats)
    fig = Figure(figsize=(7, 0.3 * max(len(names), 4) + 1.2))
    ax = fig.add_subplot()
    ax.barh(np.arange(len(names)), [n for _, n in profile], color=[colours[c] for c in cats])
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("units labelled (IoU > %g)" % dissection.iou_cutoff)
    labelled = int((dissection.labels() >= 0).sum())
    ax.set_title(f"{title}: {labelled}/{dissection.units} units labelled")
    if not names:
        ax.text(0.5, 0.5, "no unit above the IoU cut-off", ha="center", va="center",
                transform=ax.transAxes)
    for cat, colour in colours.items():
        ax.bar([0], [0], color=colour, label=cat)
    if colours:
        ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


def _axis_label(result: LCEResult, a: int) -> str:
    if a >= result.coords.shape[1]:
        return f"pc{a + 1} (none)"
    return f"pc{a + 1} ({100 * result.explained[a]:.1f}% var.)"


def plot_lce(result: LCEResult, path: Path, dims: int = 2) -> Path:
    """Scatter of the entries on the first 2 (or 3) LCE axes: colour = cluster, marker = model
    (legend), each point labelled with its layer."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    coords = np.zeros((len(result.entries), dims))
    used = min(dims, result.coords.shape[1])
    coords[:, :used] = result.coords[:, :used]
    colours = [colormaps["tab10"](int(c) % 10) for c in result.clusters]
    models = list(dict.fromkeys(e.model + (" [random init]" if e.random_init else "")
                                for e in result.entries))
    markers = "os^Dv<>Ph*X"
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    for m, model in enumerate(models):
        idx = [i for i, e in enumerate(result.entries)
               if e.model + (" [random init]" if e.random_init else "") == model]
        ax.scatter(*coords[idx].T, c=[colours[i] for i in idx], s=40,
                   marker=markers[m % len(markers)], label=model, edgecolors="black",
                   linewidths=0.4)
    for i, entry in enumerate(result.entries):
        ax.text(*coords[i], " " + entry.layer, fontsize=6)
    ax.legend(fontsize=7, loc="best")
    for a, setter in enumerate((ax.set_xlabel, ax.set_ylabel, getattr(ax, "set_zlabel", None))):
        if a < dims and setter is not None:
            setter(_axis_label(result, a))
    ax.set_title(f"Learned Concepts Embedding: {len(result.entries)} entries, "
                 f"{result.k} clusters (elbow; colour)")
    return save_png(fig, path)
