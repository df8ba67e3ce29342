"""What `zoo cut` and `zoo align` write: arrays, tables, figures and an HTML report, each run
built as one folder that appears only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.align.pipeline import AlignRun, CutRun

CUT_COLUMNS = {"grid": "the layer's pixel grid", "alignment_r2": "held-out R^2 of the layer's "
               "map onto the first layer in the shared space (default space only)",
               "position_r2": "variance of the eigenvectors explained by pixel position",
               "position_chance": "the same for shuffled positions",
               "border_r2": "explained by distance to the image border",
               "content_r2": "explained by image content (the first layer's features)",
               "miou": "figure-ground mIoU of the best eigenvector threshold (datasets with "
                       "masks)"}


def write_cut(run: CutRun, folder: str | Path, overwrite: bool = False,
              images: int = 8) -> Path:
    """eigvecs/colours/trajectory/landmarks .npy, layers.csv, three figures, report.html and
    cut.json."""
    from zoo.align.pipeline import display_images
    from zoo.align.plot import plot_colours, plot_depth, plot_trajectory
    from zoo.io import output_folder, write_csv, write_json, write_npy
    from zoo.report.figures import html_report, html_table, img_tag

    r, data = run.result, run.blocks.dataset
    with output_folder(folder, overwrite=overwrite) as tmp:
        for name, array in (("eigvecs", r.cut.eigvecs), ("colours", r.colours),
                            ("trajectory", r.trajectory), ("landmarks", r.cut.landmarks)):
            write_npy(tmp / f"{name}.npy", array)
        rows = run.rows()
        write_csv(tmp / "layers.csv", rows)
        shown = display_images(data, images)
        colours = {k: v[:len(shown)] for k, v in r.per_block(r.colours).items()}
        plot_colours(tmp / "aligned_colours.png", shown, colours, data.ids,
                     f"AlignedCut colours (same colour, same eigenvector direction){run.note}")
        by_model: dict[str, list[str]] = {}
        for row in sorted(run.blocks.info, key=lambda row: row["depth"]):
            by_model.setdefault(row["model"], []).append(row["key"])
        plot_trajectory(tmp / "trajectory.png", r.per_block(r.trajectory),
                        r.per_block(r.colours), by_model)
        plot_depth(tmp / "depth.png", rows)
        summary = run.to_dict()
        html_report(tmp / "report.html", f"zoo cut: {', '.join(summary['models'])}{run.note}", [
            ("Setup", html_table([{"data": data.name, "images": len(data),
                                   "nodes": summary["blocks"][-1]["nodes"][1],
                                   "landmarks": summary["landmarks"],
                                   "landmark directions": summary["landmark_directions"],
                                   "sigma": r.cut.sigma,
                                   **run.settings}])),
            ("Aligned colours", img_tag("aligned_colours.png", "aligned colours")),
            ("Layers", html_table(rows) + html_table(
                [{"column": k, "meaning": v} for k, v in CUT_COLUMNS.items()])),
            ("Depth", img_tag("depth.png", "depth")),
            ("Trajectories", img_tag("trajectory.png", "trajectory"))])
        write_json(tmp / "cut.json", summary)
    return Path(folder)


def write_align(run: AlignRun, folder: str | Path, overwrite: bool = False) -> Path:
    """Learned: history.csv, one map per layer and maps.json (with the scores and history, for
    `AlignRun.load`); pairwise: x_map, y_map, x_mean, y_mean .npy and pairwise.json."""
    from zoo.align.maps import save_maps
    from zoo.io import output_folder, write_csv, write_json, write_npy

    with output_folder(folder, overwrite=overwrite) as tmp:
        if run.method == "learned":
            write_csv(tmp / "history.csv", run.history)
            save_maps(tmp, run.maps, {**run.meta, "scores": run.scores,
                                      "history": run.history})
        else:
            fit = run.fit
            for name, array in (("x_map", fit.x_map), ("y_map", fit.y_map),
                                ("x_mean", fit.x_mean), ("y_mean", fit.y_mean)):
                write_npy(tmp / f"{name}.npy", array)
            write_json(tmp / "pairwise.json", run.scores)
    return Path(folder)
