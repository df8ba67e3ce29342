"""Figures and the HTML report: layer-by-layer heatmaps, profiles, PCA-to-RGB activation images,
tables.

Figures are matplotlib `Figure` objects built without pyplot, so nothing here touches the global
backend: a notebook shows them inline, `save_png` writes them atomically.
"""

from __future__ import annotations

import html
import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.io import atomic_write, write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROLE_COLOURS = {"stem": "#7f7f7f", "encoder": "#1f77b4", "decoder": "#d62728",
                "pixel_decoder": "#ff7f0e", "query_decoder": "#9467bd", "head": "#2ca02c",
                "embedding": "#17becf"}
ANNOTATE_MAX = 24  # cells per side up to which heatmaps print their values
LEGEND_MAX = 8  # undefined-value reasons spelled out under a heatmap


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Render `fig` to PNG (Agg canvas, no pyplot) and write it atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def reason_codes(reasons: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Number each distinct reason of the NaN cells: (codes, 0 = defined; reasons in order)."""
    codes = np.zeros(values.shape, dtype=int)
    distinct: list[str] = []
    for idx in zip(*np.nonzero(np.isnan(values))):
        why = str(reasons[idx]) or "undefined (no reason given)"
        if why not in distinct:
            distinct.append(why)
        codes[idx] = distinct.index(why) + 1
    return codes, distinct


def heatmap_figure(values: np.ndarray, rows: Sequence[str], cols: Sequence[str],
                   row_roles: Sequence[str], col_roles: Sequence[str], title: str,
                   row_label: str, col_label: str, *, reasons: np.ndarray | None = None,
                   scale: tuple[float, float] | None = None, note: str = "") -> Figure:
    """A layer x layer heatmap: role-coloured ticks, lines between role blocks, values printed in
    small matrices, undefined cells hatched and numbered with their reasons listed below.

    `scale` fixes the colour range (e.g. (0, 1) for a bounded similarity) so that maps of one
    metric are comparable; None picks it from the data and says so in the colour-bar label.
    """
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=float)
    codes, distinct = reason_codes(reasons if reasons is not None
                                   else np.full(values.shape, "", dtype=object), values)
    h = max(3.5, 0.24 * len(rows) + 1.8 + 0.18 * len(distinct) + 0.18 * bool(note))
    w = max(5.0, 0.24 * len(cols) + 2.8)
    fig = Figure(figsize=(w, h))
    ax = fig.subplots()
    ax.set_facecolor("#d9d9d9")
    vmin, vmax = scale if scale else (None, None)
    im = ax.imshow(np.ma.masked_invalid(values), cmap="magma", vmin=vmin, vmax=vmax,
                   aspect="auto", interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("fixed scale" if scale else "scale from the data (auto)", fontsize=7)
    if distinct:
        ys, xs = np.nonzero(codes)
        for y, x in zip(ys, xs):
            ax.add_patch(_hatch(x, y))
            ax.text(x, y, str(codes[y, x]), ha="center", va="center", fontsize=6,
                    color="black")
    if max(len(rows), len(cols)) <= ANNOTATE_MAX:
        lo, hi = im.get_clim()
        for (y, x), v in np.ndenumerate(values):
            if np.isfinite(v):
                dark = (v - lo) / ((hi - lo) or 1.0) < 0.6
                ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if dark else "black")
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
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    width = max(60, int(w * 14))
    legend = [textwrap.fill(f"{k + 1}: {why}", width)
              for k, why in enumerate(distinct[:LEGEND_MAX])]
    if len(distinct) > LEGEND_MAX:
        legend.append(f"{LEGEND_MAX + 1}-{len(distinct)}: see the report or results.csv")
    footer = "\n".join(([textwrap.fill(note, width)] if note else [])
                       + (["undefined (hatched):"] + legend if legend else []))
    if footer:  # below the x label, left-aligned with the axes
        ax.annotate(footer, xy=(0, 0), xycoords=(ax.transAxes, ax.xaxis.label),
                    xytext=(0, -6), textcoords="offset points", fontsize=6.5, va="top",
                    ha="left")
    return fig


def _hatch(x: int, y: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#888888",
                     lw=0)


def profile_figure(profiles: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                   ylabel: str) -> Figure:
    """Line plot of per-model profiles along relative depth: {model: (depths, values)}."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for name, (x, y) in profiles.items():
        ax.plot(x, y, marker="o", ms=3, label=name)
    ax.set_xlabel("relative depth")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


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


def activation_grid_figure(images: Sequence[np.ndarray], columns: dict[str, np.ndarray],
                           title: str) -> Figure:
    """Rows = images; first column the input, then one PCA-RGB map per layer (nearest upsampling,
    so each cell shows the layer's true grid)."""
    from matplotlib.figure import Figure

    ncols = 1 + len(columns)
    fig = Figure(figsize=(1.5 * ncols, 1.5 * len(images) + 0.4))
    axes = fig.subplots(len(images), ncols, squeeze=False)
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
    return fig


def plain(value: Any) -> Any:
    """A value for a table cell: numbers, strings and None as they are, anything else as text."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as an HTML table (floats to 4 decimals; an undefined value shows its
    `reason` when the row has one, else 'undefined')."""
    if not rows:
        return "<p><em>(empty)</em></p>"
    columns = list(columns or rows[0].keys())

    def cell(v: Any, row: dict[str, Any]) -> str:
        if v is None or isinstance(v, (float, np.floating)) and not np.isfinite(v):
            why = row.get("reason") or "undefined"
            return f"<span class='na' title='{html.escape(str(why))}'>n/a</span>"
        if isinstance(v, (float, np.floating)):
            return f"{v:.4f}"
        return html.escape(str(v))

    def td(v: Any, row: dict[str, Any]) -> str:
        numeric = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        return f"<td class='num'>{cell(v, row)}</td>" if numeric else f"<td>{cell(v, row)}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(td(r.get(c, ""), r) for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def reasons_list(counts: dict[str, int]) -> str:
    """An HTML list of undefined-value reasons with how many cells each explains."""
    if not counts:
        return ""
    items = "".join(f"<li>{n} cell(s): {html.escape(why)}</li>" for why, n in counts.items())
    return f"<p class='note'>Undefined values (hatched in the figure):</p><ul>{items}</ul>"


def html_report(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """A self-contained HTML page; `sections` are (heading, inner HTML) pairs; images are linked
    by relative path so the folder can be moved as a whole."""
    css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
           "table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
           "th{background:#f3f3f3}td.num{text-align:right}"
           "img{max-width:100%;border:1px solid #eee;margin:.3em 0}.note{color:#a33}"
           ".na{color:#888;border-bottom:1px dotted #888;cursor:help}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{css}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(h)}</h2>\n{body}" for h, body in sections]
    parts.append("</body></html>\n")
    return write_text(path, "\n".join(parts))


def img_tag(src: str, alt: str = "") -> str:
    """An <img> for a file next to the report."""
    return f"<img src='{html.escape(src)}' alt='{html.escape(alt)}'>"
