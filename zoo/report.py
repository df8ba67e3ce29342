"""Figures and the HTML report: layer-by-layer heatmaps, PCA-to-RGB activation images, tables.

Drawing uses matplotlib's Agg backend and only writes files (atomically); nothing is shown.
"""

from __future__ import annotations

import html
import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.io import atomic_write, write_text

ROLE_COLOURS = {"stem": "#7f7f7f", "encoder": "#1f77b4", "decoder": "#d62728",
                "pixel_decoder": "#ff7f0e", "query_decoder": "#9467bd", "head": "#2ca02c",
                "embedding": "#17becf"}


def _figure_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap_png(path: str | Path, values: np.ndarray, rows: Sequence[str], cols: Sequence[str],
                row_roles: Sequence[str], col_roles: Sequence[str], title: str,
                row_label: str, col_label: str, vmin: float | None = None,
                vmax: float | None = None) -> Path:
    """A layer x layer heatmap with role-coloured tick labels and lines between role blocks."""
    plt = _pyplot()
    h = max(3.5, 0.22 * len(rows) + 1.5)
    w = max(4.5, 0.22 * len(cols) + 2.5)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(np.ma.masked_invalid(values), cmap="magma", vmin=vmin, vmax=vmax,
                   aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for ticks, roles in ((ax.get_xticklabels(), col_roles), (ax.get_yticklabels(), row_roles)):
        for tick, role in zip(ticks, roles):
            tick.set_color(ROLE_COLOURS.get(role, "black"))
    for roles, line in ((col_roles, ax.axvline), (row_roles, ax.axhline)):
        for i in range(1, len(roles)):
            if roles[i] != roles[i - 1]:
                line(i - 0.5, color="white", lw=1.2)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title, fontsize=10)
    return atomic_write(path, lambda f: f.write(_figure_bytes(fig)))


def profile_png(path: str | Path, profiles: dict[str, tuple[np.ndarray, np.ndarray]],
                title: str, ylabel: str) -> Path:
    """Line plot of per-model profiles along relative depth: {model: (depths, values)}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, (x, y) in profiles.items():
        ax.plot(x, y, marker="o", ms=3, label=name)
    ax.set_xlabel("relative depth")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return atomic_write(path, lambda f: f.write(_figure_bytes(fig)))


def pca_rgb(spatial: np.ndarray, quantile: float = 0.01) -> np.ndarray:
    """(N, H, W, C) features -> (N, H, W, 3) colours in [0, 1]: top-3 PCA over all pixels of all
    images (channel axis only), each component quantile-clipped and scaled."""
    n, h, w, c = spatial.shape
    x = spatial.reshape(-1, c).astype(np.float64)
    x -= x.mean(axis=0)
    if c < 3 or not np.any(x):
        comps = np.zeros((x.shape[0], 3))
        comps[:, : min(c, 3)] = x[:, :3]
    else:
        _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 20000)], full_matrices=False)
        comps = x @ vt[:3].T
    lo, hi = np.quantile(comps, quantile, axis=0), np.quantile(comps, 1 - quantile, axis=0)
    rgb = (comps - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.clip(rgb, 0, 1).reshape(n, h, w, 3)


def activation_grid_png(path: str | Path, images: Sequence[np.ndarray],
                        columns: dict[str, np.ndarray], title: str) -> Path:
    """Rows = images; first column the input, then one PCA-RGB map per layer (nearest upsampling,
    so each cell shows the layer's true grid)."""
    plt = _pyplot()
    ncols = 1 + len(columns)
    fig, axes = plt.subplots(len(images), ncols, figsize=(1.5 * ncols, 1.5 * len(images) + 0.4),
                             squeeze=False)
    for r, image in enumerate(images):
        panels = [("input", image)] + [(k, v[r]) for k, v in columns.items()]
        for c, (label, panel) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("\n".join(textwrap.wrap(label, 20)), fontsize=6)
    fig.suptitle(title, fontsize=9)
    return atomic_write(path, lambda f: f.write(_figure_bytes(fig)))


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as an HTML table (floats to 4 decimals, NaN shown as 'nan')."""
    if not rows:
        return "<p><em>(empty)</em></p>"
    columns = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "nan" if not np.isfinite(v) else f"{v:.4f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """A self-contained HTML page; `sections` are (heading, inner HTML) pairs; images are linked
    by relative path so the folder can be moved as a whole."""
    css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
           "table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
           "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
           "img{max-width:100%;border:1px solid #eee;margin:.3em 0}.note{color:#a33}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{css}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(h)}</h2>\n{body}" for h, body in sections]
    parts.append("</body></html>\n")
    return write_text(path, "\n".join(parts))


def img_tag(src: str, alt: str = "") -> str:
    """An <img> for a file next to the report."""
    return f"<img src='{html.escape(src)}' alt='{html.escape(alt)}'>"
