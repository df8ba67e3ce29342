"""What `zoo compare` writes for a `Comparison`: results.csv/json, one heatmap per metric,
activations.png and report.html, built as one folder that appears only when complete."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engine.results import P_ADJUST
from zoo.report.runs import slug

if TYPE_CHECKING:
    from zoo.comparisons.comparison import Comparison, MetricResult


def summary(c: Comparison) -> dict[str, Any]:
    """The JSON summary of a comparison (results.json without the rows)."""
    return {"model_a": c.a.model, "model_b": c.b.model, "random_init_a": c.a.random_init,
            "random_init_b": c.b.random_init, "provenance_a": c.a.provenance,
            "provenance_b": c.b.provenance, "data": c.data, "n": c.n,
            "reduction": c.reduction, "layers_a": [i.as_dict() for i in c.a.layers],
            "layers_b": [i.as_dict() for i in c.b.layers], "p_adjust": P_ADJUST if any(
                "p_adjusted" in r.stats for r in c.results.values()) else None,
            "metrics": {name: {"kind": r.metric.kind,
                               "reference": getattr(r.metric, "reference", ""),
                               "best_matches": c.best_match_rows(name),
                               "role_summary": c.role_summary(name),
                               "model_max": r.aggregates.get("max"),
                               "undefined": r.reason_counts(), "notes": r.notes,
                               "caveats": c.caveats(name),
                               "heatmap": f"heatmap_{slug(name)}.png"}
                        for name, r in c.results.items()}}


def write_comparison(c: Comparison, folder: str | Path, overwrite: bool = False) -> Path:
    """Write every output of `c` into `folder` as a unit: a failed write leaves no folder, an
    existing one is refused unless `overwrite` (which replaces it)."""
    from zoo.io import output_folder, write_csv, write_json
    from zoo.report.figures import activation_grid_figure, html_report, img_tag, save_png

    with output_folder(folder, overwrite=overwrite) as tmp:
        rows = c.rows()
        for row in rows:
            row["random_init_a"], row["random_init_b"] = c.a.random_init, c.b.random_init
        write_csv(tmp / "results.csv", rows)
        info = summary(c)
        for name in c.results:
            save_png(c.heatmap(name), tmp / info["metrics"][name]["heatmap"])
        sections = _setup_sections(c) + list(c.sections)
        sections += [_metric_section(c, r, info["metrics"][name]["heatmap"])
                     for name, r in c.results.items()]
        if c.activations:
            columns = {f"{model}\n{layer}": rgb for model, layers in c.activations.items()
                       for layer, rgb in layers.items()}
            note = " [random init]" if c.a.random_init or c.b.random_init else ""
            save_png(activation_grid_figure(c.inputs, columns, "PCA-to-RGB activations (3 "
                                            "principal channel directions per layer)" + note),
                     tmp / "activations.png")
            sections.append(("Activation images", "<p>Top-3 principal components of each "
                             "layer's channels over these images, as RGB; each map on the "
                             "layer's own grid (tokens on their patch grid).</p>"
                             + img_tag("activations.png", "activations")))
            info["activations"] = "activations.png"
        write_json(tmp / "results.json", {**info, "rows": rows})
        html_report(tmp / "report.html", f"zoo compare: {c.a.label} vs {c.b.label}", sections)
    return Path(folder)


def _setup_sections(c: Comparison) -> list[tuple[str, str]]:
    from zoo.report.figures import html_table, plain

    out = []
    if c.a.random_init or c.b.random_init:
        out.append(("Warning", "<p class='note'>Random-init weights: these numbers describe "
                    "untrained networks, not the published models.</p>"))
    out.append(("Setup", html_table([{
        "model A (rows)": c.a.label, "model B (columns)": c.b.label, "data": c.data,
        "samples": c.n, "reduction": c.reduction,
        "layers": f"{len(c.a.layers)} x {len(c.b.layers)}"}])))
    out.append(("Weights and preprocessing", html_table(
        [{"side": side, **{k: plain(v) for k, v in fs.provenance.items()
                            if k != "preprocessing"}}  # the same as `transform`, as a dict
         for side, fs in (("A", c.a), ("B", c.b))])))
    return out


def _metric_section(c: Comparison, r: MetricResult, png: str) -> tuple[str, str]:
    """One metric's heatmap, statistics summary, undefined reasons and tables."""
    from zoo.report.figures import html_table, img_tag, reasons_list

    text = f"<p>{html.escape(getattr(r.metric, 'description', ''))}. " \
           f"{html.escape(getattr(r.metric, 'reference', ''))}</p>"
    for note in c.baseline_notes(r.name):
        text += f"<p>{html.escape(note)}</p>"
    for note in r.notes + c.caveats(r.name):
        text += f"<p class='note'>{html.escape(note)}</p>"
    text += reasons_list(r.reason_counts()) + img_tag(png, r.name)
    text += f"<h3>By role</h3>{html_table(c.role_summary(r.name))}"
    text += f"<h3>Best match in B for each layer of A</h3>{html_table(c.best_match_rows(r.name))}"
    return f"{r.name} ({r.metric.kind})", text
