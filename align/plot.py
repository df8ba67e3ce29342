"""PNG figures of an AlignedCut run (matplotlib Figure objects, no pyplot global state).

Called by `zoo cut`; the numeric modules never draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.report.figures import save_png

TRAJECTORY_BACKGROUND = 4000  # nodes drawn in grey behind the traced paths


def plot_colours(path: Path, images: Sequence[np.ndarray], colours: Mapping[str, np.ndarray],
                 image_ids: Sequence[str], title: str = "") -> Path:
    """One row per image: the image, then each block's aligned colours (same colour, same
    concept), columns in block order."""
    from matplotlib.figure import Figure

    keys = list(colours)
    rows, cols = len(images), len(keys) + 1
    fig = Figure(figsize=(1.6 * cols, 1.6 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, image in enumerate(images):
        axes[r, 0].imshow(image)
        axes[r, 0].set_ylabel(image_ids[r], fontsize=6)
        for c, key in enumerate(keys, start=1):
            axes[r, c].imshow(colours[key][r], interpolation="nearest")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=7)
    for c, key in enumerate(keys, start=1):
        axes[0, c].set_title(key.replace("/", "/\n", 1).replace(":", "\n"), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path)


def _pool(grid: np.ndarray, k: int) -> np.ndarray:
    """(H, W, d) -> (k * k, d): adaptive average pool to k x k, positions in row order."""
    from zoo.features.layers import reduce_array

    return reduce_array(grid[None], "NCHW", ["image"], f"positions:{k}")[0]


def plot_trajectory(path: Path, coords: Mapping[str, np.ndarray],
                    colours: Mapping[str, np.ndarray], models: Mapping[str, Sequence[str]],
                    image: int = 0, side: int = 8) -> Path:
    """2-D t-SNE of the joint graph (grey), one panel per model, with one image's pixels traced
    through that model's layers in the order given: each path follows one position (pooled to
    side x side), coloured as in the first layer; circles mark the first layer, crosses the
    last."""
    from matplotlib.figure import Figure

    every = np.concatenate([c.reshape(-1, 2) for c in coords.values()])
    background = every[::max(1, len(every) // TRAJECTORY_BACKGROUND)]
    fig = Figure(figsize=(5 * len(models), 5))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, (model, keys) in zip(axes, models.items()):
        k = min(side, *(min(coords[key].shape[1:3]) for key in keys))
        paths = np.stack([_pool(coords[key][image], k) for key in keys], 1)
        tint = _pool(colours[keys[0]][image], k).clip(0, 1)
        ax.scatter(*background.T, s=2, c="0.85", linewidths=0)
        for p, colour in zip(paths, tint):
            ax.plot(*p.T, color=colour, lw=0.8, alpha=0.8)
        ax.scatter(*paths[:, 0].T, c=tint, s=14, marker="o", label=keys[0].split(":")[-1])
        ax.scatter(*paths[:, -1].T, c=tint, s=18, marker="x", label=keys[-1].split(":")[-1])
        ax.legend(fontsize=7, loc="best")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{model}: image {image} through {len(keys)} layers", fontsize=9)
    return save_png(fig, path)


def plot_depth(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Per model along relative depth: oracle mIoU (when masks were given) and the positional
    bias (position R^2, dashed: its chance level)."""
    from matplotlib.figure import Figure

    with_miou = any(r.get("miou") is not None for r in rows)
    panels = ["miou", "position_r2"] if with_miou else ["position_r2"]
    fig = Figure(figsize=(5.5 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for ax, metric in zip(axes, panels):
        for model in models:
            mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["depth"])
            line, = ax.plot([r["depth"] for r in mine], [r[metric] for r in mine], "o-",
                            label=model, ms=4)
            if metric == "position_r2":
                ax.plot([r["depth"] for r in mine], [r["position_chance"] for r in mine], ":",
                        color=line.get_color(), lw=1)
        ax.set_xlabel("relative depth")
        ax.set_ylim(0, 1)
        ax.set_ylabel({"miou": "oracle mIoU (figure-ground)",
                       "position_r2": "variance explained by position"}[metric])
        ax.legend(fontsize=7)
    return save_png(fig, path)
