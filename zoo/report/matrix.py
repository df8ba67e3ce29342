"""What `zoo matrix` writes for a `MatrixResult`: matrix.csv/json, an annotated heatmap with the
undefined reasons, smoothness.png and report.html, built as one folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from zoo.comparisons.matrix import MatrixResult


def matrix_summary(m: MatrixResult) -> dict[str, Any]:
    """The JSON summary (matrix.json without the values)."""
    return {"models": m.models, "random_init": m.random_init, "metric": m.metric.name,
            "data": m.data, "n": m.n, "reduction": m.reduction, "labels": m.names(),
            "layers": m.labels,
            "roles": [lab["role"] for lab in m.labels], "run": str(m.run),
            "provenance": m.provenance, "undefined": m.reason_counts(),
            "baseline_mean": None if m.baseline is None else float(np.nanmean(m.baseline)),
            "smoothness": {k: {"depth": d, "value": v} for k, (d, v) in m.smoothness().items()}}


def write_matrix(m: MatrixResult, folder: str | Path, overwrite: bool = False) -> Path:
    """Write every output of `m` into `folder` as a unit (see `zoo.io.output_folder`)."""
    from zoo.io import output_folder, write_csv, write_json
    from zoo.report.figures import (
        html_report,
        html_table,
        img_tag,
        plain,
        profile_figure,
        reasons_list,
        save_png,
    )

    with output_folder(folder, overwrite=overwrite) as tmp:
        write_csv(tmp / "matrix.csv", m.rows())
        save_png(m.heatmap(), tmp / "matrix.png")
        ylabel = f"1 - {m.metric.name}" if m.metric.kind == "similarity" else m.metric.name
        save_png(profile_figure(m.smoothness(), f"change between consecutive layers{m.note}",
                                ylabel), tmp / "smoothness.png")
        summary = matrix_summary(m)
        write_json(tmp / "matrix.json", {**summary, "values": m.values,
                                         "reasons": m.reasons.tolist(),
                                         "baseline": m.baseline})
        baseline = "" if m.baseline is None else (
            f"<p>Expected {m.metric.name} for unrelated data at n={m.n}: "
            f"{np.nanmean(m.baseline):.3f} on average over pairs.</p>")
        warning = ("<p class='note'>Random-init weights: these numbers describe untrained "
                   "networks, not the published models.</p>" if m.random_init else "")
        html_report(tmp / "report.html", f"zoo matrix: {m.metric.name} across the zoo{m.note}", [
            ("Setup", warning + html_table([{
                "models": ", ".join(m.models), "data": m.data, "samples": m.n,
                "reduction": m.reduction, "layers": len(m.labels)}])),
            ("Weights and preprocessing", html_table(
                [{"model": k, **{f: plain(v) for f, v in p.items() if f != "id"}}
                 for k, p in m.provenance["models"].items()])),
            ("Matrix", baseline + reasons_list(m.reason_counts()) + img_tag("matrix.png")),
            ("Best match in each other model", html_table(m.best_match_rows())),
            ("Smoothness along depth", "<p>Each point: how much the representation changes "
             "from a layer to the next of the same model (1 - similarity, or the distance), at "
             "their mean relative depth; low and flat means smooth processing.</p>"
             + img_tag("smoothness.png", "smoothness"))])
    return Path(folder)
