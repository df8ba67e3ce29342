"""`zoo cut MODELS...` (AlignedCut: one Nystrom normalized cut over the pixels of several models'
layers, aligned colours, segmentation by layer, positional bias) and `zoo align MODELS...`
(learned linear channel maps into a shared space, or a closed-form alignment of two layers)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from zoo.align.learned import AlignConfig
from zoo.align.ncut import DEFAULT_LANDMARKS
from zoo.cli.common import (BatchOpt, DataOpt, DeviceOpt, JsonOpt, LayersOpt, NoCacheOpt,
                            RandomInitOpt, SkipBadOpt, WeightsOpt, load_data, load_model,
                            out_dir, print_json, print_table, progress_bar, split_list)
from zoo.errors import UnknownNameError, ZooError

if TYPE_CHECKING:
    from zoo.data import Dataset

ModelsArg = Annotated[list[str], typer.Argument(help="model ids or families")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="output folder")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of every random choice")]
DimOpt = Annotated[int, typer.Option("--dim", min=2, help="width of the shared channel space")]
SPATIAL = ("NCHW", "NLC")
TRAINING = AlignConfig()  # defaults of `zoo align`
EigenOpt = Annotated[float, typer.Option(help="eigen-constraint weight")]
ZeroOpt = Annotated[float, typer.Option(help="zero-centring weight")]
CovOpt = Annotated[float, typer.Option(help="covariance penalty weight")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="most training epochs")]
PatienceOpt = Annotated[int, typer.Option(min=1, help="epochs without held-out improvement "
                                          "before stopping")]
LrOpt = Annotated[float, typer.Option(help="Adam learning rate")]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _spatial_layers(zmodel: Any, patterns: list[str] | None) -> list[str]:
    """The model's layers matching `patterns` (all spatial layers when None), in model order."""
    if patterns is None:
        return [n for n, info in zmodel.layers.items() if info.layout in SPATIAL]
    names = [n for n in zmodel.layers if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    flat = [n for n in names if zmodel.layers[n].layout not in SPATIAL]
    if flat:
        raise ZooError(f"{zmodel.id} layer {flat[0]} has layout {zmodel.layers[flat[0]].layout} "
                       "(no pixel grid); pick spatial (NCHW or NLC) layers")
    return names


def _load_blocks(models: list[str], data: str, layers: list[str] | None, weights: str | None,
                 random_init: bool, device: str, batch_size: int, skip_bad: bool,
                 no_cache: bool, progress: Any) -> tuple[Dataset, dict[str, np.ndarray],
                                                         list[dict[str, Any]]]:
    """Extract every selected spatial layer of every model over the dataset.

    Returns the dataset, blocks (images, H, W, C) keyed `model:layer`, and per-block info.
    A --layers pattern may match in some models only, but must match somewhere.
    """
    from zoo.align.maps import map_key
    from zoo.cache import FeatureCache
    from zoo.extract import extract

    if weights and len(models) > 1:
        raise ZooError("--weights names one model's weights; pass exactly one model with it")
    patterns = split_list(layers)
    dataset = load_data(data, skip_bad)
    cache = None if no_cache else FeatureCache()
    blocks, info, matched = {}, [], set()
    for name in models:
        zmodel = load_model(name, weights, random_init, device)
        names = _spatial_layers(zmodel, patterns)
        matched |= {p for p in patterns or [] for n in names if fnmatch.fnmatchcase(n, p)}
        if not names:
            raise ZooError(f"no spatial layer of {zmodel.id} matches --layers "
                           f"{','.join(patterns or [])}; see `zoo info {zmodel.id}`")
        feats = extract(zmodel, dataset, names, "none", batch_size, cache, progress)
        for layer in names:
            key = map_key(zmodel.id, layer)
            blocks[key] = feats[layer].spatial()
            layer_info = zmodel.layers[layer]
            info.append({"key": key, "model": zmodel.id, "layer": layer,
                         "depth": layer_info.depth, "role": layer_info.role,
                         "input_size": zmodel.input.size, "random_init": zmodel.random_init})
    unmatched = [p for p in patterns or [] if p not in matched]
    if unmatched:
        raise UnknownNameError("layer", unmatched[0], [], f"it matches no spatial layer of "
                               f"{', '.join(models)}; see `zoo info MODEL`")
    return dataset, blocks, info


def _mask_labels(dataset: Dataset, blocks: dict[str, np.ndarray],
                 info: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """Foreground/background labels on each block's grid, when the dataset has masks."""
    from zoo.align.segment import mask_labels

    if not dataset.has_masks:
        return None
    masks = [dataset.mask(i) for i in range(len(dataset))]
    return {row["key"]: mask_labels(masks, row["input_size"], blocks[row["key"]].shape[1:3])
            for row in info}


def _display_images(dataset: Dataset, count: int, size: int = 128) -> list[np.ndarray]:
    """The first `count` images, short side resized and centre-cropped like the models see."""
    from zoo.model import preprocess_image
    from zoo.specs import InputConfig

    plain = InputConfig(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return [preprocess_image(dataset.image(i), plain).transpose(1, 2, 0).clip(0, 1)
            for i in range(min(count, len(dataset)))]


def _layer_rows(result: Any, info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for row in info:
        key = row["key"]
        n, h, w = result.layout.shapes[result.layout.keys.index(key)]
        bias, seg = result.bias[key], result.segmentation.get(key)
        rows.append({"model": row["model"], "layer": row["layer"], "role": row["role"],
                     "depth": row["depth"], "grid": f"{h}x{w}",
                     "alignment_r2": result.alignment.get(key),
                     "position_r2": bias.position_r2, "position_chance": bias.position_chance,
                     "border_r2": bias.border_r2, "border_chance": bias.border_chance,
                     "content_r2": bias.content_r2,
                     "miou": seg.miou if seg else None,
                     "miou_threshold": seg.threshold if seg else None})
    return rows


def _write_cut(folder: Path, result: Any, info: list[dict[str, Any]], dataset: Dataset,
               images: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Arrays, per-layer table and figures, then `cut.json` last (its presence marks a complete
    run); returns the summary written there."""
    from zoo.align.plot import plot_colours, plot_depth, plot_trajectory
    from zoo.io import write_csv, write_json, write_npy

    rows = _layer_rows(result, info)
    offsets = result.layout.offsets
    write_npy(folder / "eigvecs.npy", result.cut.eigvecs)
    write_npy(folder / "colours.npy", result.colours)
    write_npy(folder / "trajectory.npy", result.trajectory)
    write_npy(folder / "landmarks.npy", result.cut.landmarks)
    write_csv(folder / "layers.csv", rows)
    shown = _display_images(dataset, images)
    colours = {k: v[:len(shown)] for k, v in result.per_block(result.colours).items()}
    plot_colours(folder / "aligned_colours.png", shown, colours, dataset.ids)
    by_model: dict[str, list[str]] = {}
    for row in sorted(info, key=lambda r: r["depth"]):
        by_model.setdefault(row["model"], []).append(row["key"])
    plot_trajectory(folder / "trajectory.png", result.per_block(result.trajectory),
                    result.per_block(result.colours), by_model)
    plot_depth(folder / "depth.png", rows)
    summary = {"models": list(dict.fromkeys(r["model"] for r in info)), "data": dataset.name,
               "images": len(dataset), "sample_ids": dataset.ids, **settings,
               "landmarks": len(result.cut.landmarks),
               "sigma": result.cut.sigma, "eigvals": result.cut.eigvals,
               "blocks": [{**row, "nodes": [int(offsets[i]), int(offsets[i + 1])],
                           "shape": list(result.layout.shapes[i])}
                          for i, row in enumerate(info)],
               "layers": rows}
    write_json(folder / "cut.json", summary)
    return summary


def cut_cmd(models: ModelsArg, data: DataOpt = "samples", layers: LayersOpt = None,
            n_eig: Annotated[int, typer.Option("--n-eig", min=1, help="eigenvectors")] = 20,
            landmarks: Annotated[int, typer.Option("--landmarks", min=2, help="Nystrom "
                                 "landmarks (farthest-point sampled)")] = DEFAULT_LANDMARKS,
            sigma: Annotated[float | None, typer.Option("--sigma", help="affinity bandwidth "
                             "(default: from the median pairwise distance)")] = None,
            affinity: Annotated[str, typer.Option("--affinity", help="rbf or cosine")] = "rbf",
            dim: DimOpt = TRAINING.dim,
            maps: Annotated[str | None, typer.Option("--maps", help="folder of learned maps "
                            "from `zoo align` (default: PCA + Procrustes onto the first "
                            "layer)")] = None,
            images: Annotated[int, typer.Option("--images", min=1, help="images shown in the "
                              "colour figure")] = 8,
            seed: SeedOpt = 0, weights: WeightsOpt = None, random_init: RandomInitOpt = False,
            device: DeviceOpt = "cpu", batch_size: BatchOpt = 16, out: OutOpt = None,
            skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
            json_: JsonOpt = False) -> None:
    """One normalized cut over the pixels of MODELS' layers: aligned colours, eigenvectors,
    segmentation by layer (datasets with masks) and positional bias."""
    from zoo.align.affinity import check_affinity
    from zoo.align.cut import aligned_cut
    from zoo.align.maps import load_maps

    check_affinity(affinity)
    learned = load_maps(maps) if maps else None
    folder = out_dir(out or f"runs/cut-{_slug('-'.join(models))}")
    with progress_bar() as progress:
        dataset, blocks, info = _load_blocks(models, data, layers, weights, random_init, device,
                                             batch_size, skip_bad, no_cache, progress)
        result = aligned_cut(blocks, learned, dim, n_eig, landmarks, sigma, affinity, seed,
                             device, _mask_labels(dataset, blocks, info), progress=progress)
    settings = {"n_eig": n_eig, "affinity": affinity, "seed": seed,
                "shared_space": f"maps:{maps}" if maps else f"pca+procrustes:{dim}"}
    summary = _write_cut(folder, result, info, dataset, images, settings)
    rows, nodes = summary["layers"], summary["blocks"][-1]["nodes"][1]
    if json_:
        print_json({**summary, "out": str(folder)})
        return
    print_table(f"AlignedCut of {len(info)} layers on {dataset.name} ({len(dataset)} images, "
                f"{nodes} nodes, sigma {result.cut.sigma:.4g})",
                ["model", "layer", "depth", "grid", "align R2", "position R2", "chance",
                 "border R2", "mIoU"],
                [[r["model"], r["layer"], r["depth"], r["grid"], _or_dash(r["alignment_r2"]),
                  r["position_r2"], r["position_chance"], r["border_r2"], _or_dash(r["miou"])]
                 for r in rows])
    print(f"wrote eigenvectors, colours and figures to {folder}")


def _or_dash(value: float | None) -> Any:
    return "-" if value is None else value


def _target_values(target: str, dataset: Dataset, weights: str | None, random_init: bool,
                   device: str, batch_size: int, no_cache: bool, progress: Any) -> np.ndarray:
    """--target as rows for the dataset's images: a .csv/.npy table keyed by sample id, or a
    reference MODEL:LAYER's image-pooled features."""
    from zoo.align.target import load_target, target_rows

    path = Path(target).expanduser()
    if path.suffix in (".csv", ".npy") or path.exists():
        values, ids = load_target(path)
        return target_rows(values, ids, dataset.ids)
    model, sep, layer = target.rpartition(":")
    if not sep or not model or not layer:
        raise ZooError(f"--target {target!r} is neither a .csv/.npy file nor MODEL:LAYER")
    from zoo.cache import FeatureCache
    from zoo.extract import extract

    zmodel = load_model(model, weights, random_init, device)
    zmodel.layer(layer)
    feats = extract(zmodel, dataset, [layer], "gap", batch_size,
                    None if no_cache else FeatureCache(), progress)
    return feats[layer].data.astype(np.float64)


def _pairwise(blocks: dict[str, np.ndarray], method: str, seed: int) -> tuple[Any, list[str]]:
    """Closed-form alignment of the first block onto the second over co-located positions."""
    from zoo.align.pairwise import align_pair
    from zoo.features import reduce_array

    if len(blocks) != 2:
        raise ZooError(f"--method {method} aligns exactly two layers; {len(blocks)} were "
                       f"selected ({', '.join(blocks)})")
    (kx, x), (ky, y) = blocks.items()
    if len(x) < 2:
        raise ZooError("a held-out score needs at least 2 images; use more --data")
    k = min(*x.shape[1:3], *y.shape[1:3])
    ids = [str(i) for i in range(len(x))]
    rows = [reduce_array(b, "NCHW", ids, f"positions:{k}")[0] for b in (x, y)]
    groups = np.repeat(np.arange(len(x)), k * k)
    fit = align_pair(rows[0], rows[1], method, max(0.25, 1 / len(x)), groups, seed)
    return fit, [kx, ky]


def align_cmd(models: ModelsArg, data: DataOpt = "samples", layers: LayersOpt = None,
              target: Annotated[str | None, typer.Option("--target", "-t", help="per-image "
                                "target: .csv/.npy keyed by sample id, or MODEL:LAYER")] = None,
              method: Annotated[str, typer.Option("--method", "-m", help="learned, or a "
                                "closed-form alignment of two layers: cca, procrustes, "
                                "ridge")] = "learned",
              dim: DimOpt = TRAINING.dim,
              eigen_weight: EigenOpt = TRAINING.eigen_weight,
              zero_weight: ZeroOpt = TRAINING.zero_weight,
              cov_weight: CovOpt = TRAINING.cov_weight, epochs: EpochsOpt = TRAINING.epochs,
              patience: PatienceOpt = TRAINING.patience, lr: LrOpt = TRAINING.lr,
              seed: SeedOpt = 0, weights: WeightsOpt = None, random_init: RandomInitOpt = False,
              device: DeviceOpt = "cpu", batch_size: BatchOpt = 16, out: OutOpt = None,
              skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
              json_: JsonOpt = False) -> None:
    """Learn one linear map per layer of MODELS into a shared space that predicts --target, or
    (--method cca|procrustes|ridge) align two layers in closed form with a held-out score."""
    from zoo.align.learned import train_alignment
    from zoo.align.pairwise import METHODS

    if method != "learned" and method not in METHODS:
        raise UnknownNameError("alignment method", method, ("learned", *METHODS))
    if method == "learned" and not target:
        raise ZooError("--method learned needs --target (a .csv/.npy file or MODEL:LAYER)")
    folder = out_dir(out or f"runs/align-{_slug('-'.join(models))}")
    config = AlignConfig(dim=dim, eigen_weight=eigen_weight, zero_weight=zero_weight,
                         cov_weight=cov_weight, lr=lr, epochs=epochs, patience=patience,
                         seed=seed)
    with progress_bar() as progress:
        dataset, blocks, info = _load_blocks(models, data, layers, weights, random_init, device,
                                             batch_size, skip_bad, no_cache, progress)
        if method == "learned":
            values = _target_values(target, dataset, weights, random_init, device, batch_size,
                                    no_cache, progress)
            tokens = {k: b.reshape(len(b), -1, b.shape[-1]) for k, b in blocks.items()}
            run = train_alignment(tokens, values, config, device, progress)
        else:
            fit, keys = _pairwise(blocks, method, seed)
    if method == "learned":
        _report(json_, folder, *_write_learned(folder, run, config, target, dataset.name, info))
    else:
        _report(json_, folder, *_write_pairwise(folder, fit, keys, dataset.name))


def _write_pairwise(folder: Path, fit: Any, keys: list[str],
                    data: str) -> tuple[dict[str, Any], str, list[str], list[list[Any]]]:
    """x_map.npy, y_map.npy and pairwise.json; returns the summary and a table to print."""
    from zoo.io import write_json, write_npy

    for side, matrix in (("x", fit.x_map), ("y", fit.y_map)):
        write_npy(folder / f"{side}_map.npy", matrix)
    summary = {"method": fit.method, "x": keys[0], "y": keys[1], "score": fit.score,
               "score_name": fit.score_name, "train_score": fit.train_score,
               "n_train": fit.n_train, "n_test": fit.n_test, "data": data}
    write_json(folder / "pairwise.json", summary)
    return (summary, f"{fit.method}: {keys[0]} -> {keys[1]}",
            ["score", "held-out", "train", "train rows", "test rows"],
            [[fit.score_name, fit.score, fit.train_score, fit.n_train, fit.n_test]])


def _write_learned(folder: Path, run: Any, config: AlignConfig, target: str, data: str,
                   info: list[dict[str, Any]]) -> tuple[dict[str, Any], str, list[str],
                                                        list[list[Any]]]:
    """history.csv, then the maps and maps.json; returns the summary and a table to print."""
    from zoo.align.maps import save_maps
    from zoo.io import write_csv

    write_csv(folder / "history.csv", run.history)
    save_maps(folder, run.maps, {"target": target, "data": data, "config": config.__dict__,
                                 "best_epoch": run.best_epoch, "val_r2": run.val_r2,
                                 "layers": info})
    summary = {"method": "learned", "target": target, "data": data, "dim": config.dim,
               "best_epoch": run.best_epoch, "epochs_run": len(run.history),
               "val_r2": run.val_r2, "maps": list(run.maps)}
    best = run.history[run.best_epoch - 1]
    return (summary, f"learned maps into {config.dim} dims, best epoch {run.best_epoch} of "
            f"{len(run.history)}", ["at the best epoch", "value"],
            [[k, best[k]] for k in ("val_r2", "target", "eigen", "zero", "cov")])


def _report(json_: bool, folder: Path, summary: dict[str, Any], title: str,
            columns: list[str], rows: list[list[Any]]) -> None:
    if json_:
        print_json({**summary, "out": str(folder)})
        return
    print_table(title, columns, rows)
    print(f"wrote results to {folder}")


def register(app: typer.Typer) -> None:
    app.command("cut")(cut_cmd)
    app.command("align")(align_cmd)
