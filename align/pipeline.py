"""AlignedCut and channel alignment from models to results: extract every selected spatial
layer, cut or align, and return objects that tabulate, draw and save themselves.

    run = zoo.align.cut(["dinov2", "clip"], "samples", layers="block*", random_init=True)
    run.table(); run.save("runs/cut")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.align.learned import AlignConfig
from zoo.align.nystrom import DEFAULT_LANDMARKS
from zoo.errors import UnknownNameError, ZooError
from zoo.result import Result

if TYPE_CHECKING:
    import pandas as pd

    from zoo.align.aligned import CutResult
    from zoo.data.dataset import Dataset
    from zoo.model.base import ZooModel
    from zoo.progress import Progress

@dataclass
class Blocks:
    """Every selected spatial layer's maps (images, H, W, C) keyed `model:layer`, with info."""

    dataset: Dataset
    maps: dict[str, np.ndarray] = field(repr=False)
    info: list[dict[str, Any]]


def load_blocks(models: Sequence[ZooModel], dataset: Dataset, layers: Sequence[str] | None,
                batch_size: int = 16, cache: Any = None,
                progress: Progress | None = None) -> Blocks:
    """Extract every selected layer with a pixel grid of every model over the dataset
    (`zoo.model.selection`'s rule: a pattern must match in some model, each model keeps one)."""
    from zoo.align.maps import map_key
    from zoo.features.extraction import extract
    from zoo.model.selection import NO_GRID, select_for

    by_id = {model.id: model for model in models}
    if len(by_id) < len(models):
        twice = next(m.id for m in models if sum(o.id == m.id for o in models) > 1)
        raise ZooError(f"model {twice} is given twice; a cut takes each model once (pick "
                       "several of its layers with --layers instead)")
    chosen = select_for({m.id: list(m.layers) for m in models}, layers,
                        keep=lambda m, n: by_id[m].layers[n].has_grid, what="spatial layer",
                        excluded=NO_GRID)
    maps, info = {}, []
    for model in models:
        names = chosen[model.id]
        feats = extract(model, dataset, names, "none", batch_size, cache, progress)
        for layer in names:
            key = map_key(model.id, layer)
            maps[key] = feats[layer].spatial()
            li = model.layers[layer]
            info.append({"key": key, "model": model.id, "layer": layer, "depth": li.depth,
                         "role": li.role, "input_size": model.input.size,
                         "random_init": model.random_init})
    return Blocks(dataset, maps, info)


def mask_labels_of(blocks: Blocks) -> dict[str, np.ndarray] | None:
    """Foreground/background labels on each block's grid, when the dataset has masks."""
    from zoo.align.segment import mask_labels

    if not blocks.dataset.has_masks:
        return None
    masks = [blocks.dataset.mask(i) for i in range(len(blocks.dataset))]
    return {row["key"]: mask_labels(masks, row["input_size"], blocks.maps[row["key"]].shape[1:3])
            for row in blocks.info}


def display_images(dataset: Dataset, count: int, size: int = 128) -> list[np.ndarray]:
    """The first `count` images, short side resized and centre-cropped like the models see."""
    from zoo.model.base import preprocess_image
    from zoo.registry.specs import InputConfig

    plain = InputConfig(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return [preprocess_image(dataset.image(i), plain).transpose(1, 2, 0).clip(0, 1)
            for i in range(min(count, len(dataset)))]


@dataclass(repr=False)
class CutRun(Result):
    """An AlignedCut over several models' layers: the cut, colours, per-layer scores.

    A run read back by `load` (`zoo.open`) has the cut, colours, trajectory and every score,
    but neither the layers' features (`blocks.maps`) nor the images (`blocks.dataset` keeps
    their ids and fingerprint): using them, or saving the run again (it draws the images), is
    a ZooError.
    """

    result: CutResult = field(repr=False)
    blocks: Blocks = field(repr=False)
    settings: dict[str, Any]

    @property
    def random_init(self) -> bool:
        return any(row["random_init"] for row in self.blocks.info)

    @property
    def note(self) -> str:
        return " [random init]" if self.random_init else ""

    def rows(self) -> list[dict[str, Any]]:
        """Per layer: grid, alignment R^2, positional/border/content bias with chance levels,
        and (datasets with masks) the oracle segmentation mIoU."""
        r, rows = self.result, []
        for row in self.blocks.info:
            key = row["key"]
            _, h, w = r.layout.shapes[r.layout.keys.index(key)][:3]
            bias, seg = r.bias[key], r.segmentation.get(key)
            rows.append({"model": row["model"], "layer": row["layer"], "role": row["role"],
                         "depth": row["depth"], "grid": f"{h}x{w}",
                         "alignment_r2": r.alignment.get(key),
                         "position_r2": bias.position_r2, "position_chance": bias.position_chance,
                         "border_r2": bias.border_r2, "border_chance": bias.border_chance,
                         "content_r2": bias.content_r2,
                         "miou": seg.miou if seg else None,
                         "miou_threshold": seg.threshold if seg else None})
        return rows

    def table(self) -> pd.DataFrame:
        """`rows()` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    marker = "cut.json"

    def headline(self) -> str:
        models = list(dict.fromkeys(row["model"] for row in self.blocks.info))
        return (f"{', '.join(models)}{self.note}: {len(self.blocks.info)} layers, "
                f"{len(self.blocks.dataset)} images, {self.settings['n_eig']} eigenvectors")

    def to_dict(self) -> dict[str, Any]:
        """What cut.json holds."""
        from zoo.align.saved import block_scores

        r, offsets = self.result, self.result.layout.offsets
        data = self.blocks.dataset
        return {"models": list(dict.fromkeys(row["model"] for row in self.blocks.info)),
                "random_init": self.random_init, "data": data.name, "images": len(data),
                "sample_ids": data.ids, "data_fingerprint": data.fingerprint, **self.settings,
                "landmarks": len(r.cut.landmarks), "landmark_directions": r.cut.directions,
                "sigma": r.cut.sigma, "precision": r.cut.precision,
                "precision_note": r.cut.note, "eigvals": r.cut.eigvals,
                "blocks": [{**row, "nodes": [int(offsets[i]), int(offsets[i + 1])],
                            "shape": list(r.layout.shapes[i]),
                            "scores": block_scores(r, row["key"])}
                           for i, row in enumerate(self.blocks.info)],
                "layers": self.rows()}

    def save(self, folder: str | Path, overwrite: bool = False, images: int = 8) -> Path:
        """Arrays, layers.csv, figures, report.html and cut.json, written as one folder."""
        from zoo.align.report import write_cut

        return write_cut(self, folder, overwrite, images)

    @classmethod
    def load(cls, folder: str | Path) -> CutRun:
        """A cut saved by `save` (see the class doc for what it lacks)."""
        from zoo.align.saved import read_cut

        return read_cut(folder)


def cut(models: Sequence[str | ZooModel], data: str | Dataset,
        layers: str | Sequence[str] | None = None, *, n_eig: int = 20,
        landmarks: int = DEFAULT_LANDMARKS, sigma: float | None = None, affinity: str = "rbf",
        dim: int = AlignConfig().dim, maps: str | Path | None = None, seed: int = 0,
        weights: dict[str, str] | None = None, random_init: bool = False, device: str = "cpu",
        batch_size: int = 16, cache: bool = True, progress: Progress | None = None,
        options: dict[str, Any] | None = None, precision: str = "auto") -> CutRun:
    """One normalized cut over the pixels of `models`' spatial layers: aligned colours,
    eigenvectors, segmentation by layer (datasets with masks) and positional bias. Layers go
    into a shared space by `maps` (from `align`) or PCA + Procrustes onto the first layer.
    `options` are load options for every model (e.g. trust_weights=True)."""
    from zoo.align.affinity import check_affinity
    from zoo.align.aligned import aligned_cut
    from zoo.align.maps import load_maps
    from zoo.align.nystrom import check_precision

    check_affinity(affinity)
    check_precision(precision)
    learned = load_maps(maps) if maps else None
    blocks = _blocks(models, data, layers, weights, random_init, device, batch_size, cache,
                     progress, options)
    result = aligned_cut(blocks.maps, learned, dim, n_eig, landmarks, sigma, affinity, seed,
                         device, mask_labels_of(blocks), progress=progress,
                         precision=precision)
    return CutRun(result, blocks, {"n_eig": n_eig, "affinity": affinity, "seed": seed,
                                   "shared_space": f"maps:{maps}" if maps
                                   else f"pca+procrustes:{dim}"})


def _blocks(models: Sequence[str | ZooModel], data: str | Dataset,
            layers: str | Sequence[str] | None, weights: dict[str, str] | None,
            random_init: bool, device: str, batch_size: int, cache: bool,
            progress: Progress | None, options: dict[str, Any] | None) -> Blocks:
    from zoo.data.resolve import as_dataset
    from zoo.features.cache import as_cache
    from zoo.model.loading import load_models
    from zoo.model.selection import split_names

    loaded = load_models(list(models), weights, random_init=random_init, device=device,
                         **(options or {}))
    return load_blocks(loaded, as_dataset(data), split_names(layers), batch_size,
                       as_cache(cache), progress)


@dataclass(repr=False)
class AlignRun(Result):
    """A learned alignment (`maps`, training history) or a closed-form pairwise one (`fit`).
    A run read back by `load` (`zoo.open`) holds all of these; it never held the features."""

    method: str
    scores: dict[str, Any]
    maps: dict[str, Any] = field(default_factory=dict, repr=False)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    fit: Any = field(default=None, repr=False)
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    marker = "maps.json"  # learned; a pairwise run writes pairwise.json

    def table(self) -> pd.DataFrame:
        """The training history (learned) or the held-out score (pairwise)."""
        import pandas as pd

        return pd.DataFrame(self.history or [self.scores])

    def to_dict(self) -> dict[str, Any]:
        """The method and its held-out scores (what maps.json / pairwise.json hold)."""
        return {"method": self.method, **self.scores}

    def headline(self) -> str:
        return f"{self.method} alignment of {len(self.maps) or 2} layers"

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """maps + maps.json + history.csv (learned), or x_map/y_map + pairwise.json."""
        from zoo.align.report import write_align

        return write_align(self, folder, overwrite)

    @classmethod
    def load(cls, folder: str | Path) -> AlignRun:
        """An alignment saved by `save`: learned maps with their history, or a pairwise fit."""
        from zoo.align.saved import read_align

        return read_align(folder)


def align(models: Sequence[str | ZooModel], data: str | Dataset,
          layers: str | Sequence[str] | None = None, *, target: str | None = None,
          method: str = "learned", config: AlignConfig | None = None, seed: int = 0,
          weights: dict[str, str] | None = None, random_init: bool = False,
          device: str = "cpu", batch_size: int = 16, cache: bool = True,
          progress: Progress | None = None, options: dict[str, Any] | None = None) -> AlignRun:
    """Learn one linear map per layer into a shared space that predicts `target` (a .csv/.npy
    keyed by sample id, or MODEL:LAYER), or (`method` cca|procrustes|ridge) align two layers in
    closed form with a held-out score. `options` are load options for every model."""
    from zoo.align.learned import train_alignment
    from zoo.align.pairwise import METHODS

    if method != "learned" and method not in METHODS:
        raise UnknownNameError("alignment method", method, ("learned", *METHODS))
    if method == "learned" and not target:
        raise ZooError("method learned needs --target (target=): a .csv/.npy file or MODEL:LAYER")
    config = config or AlignConfig(seed=seed)
    blocks = _blocks(models, data, layers, weights, random_init, device, batch_size, cache,
                     progress, options)
    if method != "learned":
        fit, keys = _pairwise(blocks.maps, method, seed)
        return AlignRun(method, {"method": fit.method, "x": keys[0], "y": keys[1],
                                 "score": fit.score, "score_name": fit.score_name,
                                 "train_score": fit.train_score, "n_train": fit.n_train,
                                 "n_test": fit.n_test, "data": blocks.dataset.name}, fit=fit)
    values = _target_values(target, blocks.dataset, random_init, device, batch_size, cache,
                            progress, options)
    tokens = {k: b.reshape(len(b), -1, b.shape[-1]) for k, b in blocks.maps.items()}
    run = train_alignment(tokens, values, config, device, progress)
    summary = {"method": "learned", "target": target, "data": blocks.dataset.name,
               "dim": config.dim, "best_epoch": run.best_epoch, "epochs_run": len(run.history),
               "val_r2": run.val_r2, "maps": list(run.maps)}
    meta = {"target": target, "data": blocks.dataset.name, "config": config.__dict__,
            "best_epoch": run.best_epoch, "val_r2": run.val_r2, "layers": blocks.info}
    return AlignRun("learned", summary, dict(run.maps), list(run.history), meta=meta)


def _target_values(target: str, dataset: Dataset, random_init: bool, device: str,
                   batch_size: int, cache: bool, progress: Progress | None,
                   options: dict[str, Any] | None) -> np.ndarray:
    """The target as rows for the dataset's images: a .csv/.npy table keyed by sample id, or a
    reference MODEL:LAYER's image-pooled features."""
    from zoo.align.target import load_target, target_rows

    path = Path(target).expanduser()
    if path.suffix in (".csv", ".npy") or path.exists():
        values, ids = load_target(path)
        return target_rows(values, ids, dataset.ids)
    model, sep, layer = target.rpartition(":")
    if not sep or not model or not layer:
        raise ZooError(f"--target {target!r} is neither a .csv/.npy file nor MODEL:LAYER")
    from zoo.features.cache import as_cache
    from zoo.features.extraction import extract
    from zoo.model.loading import load_model

    zmodel = load_model(model, random_init=random_init, device=device, **(options or {}))
    zmodel.layer(layer)
    feats = extract(zmodel, dataset, [layer], "gap", batch_size, as_cache(cache), progress)
    return feats[layer].data.astype(np.float64)


def _pairwise(maps: dict[str, np.ndarray], method: str, seed: int) -> tuple[Any, list[str]]:
    """Closed-form alignment of the first block onto the second over co-located positions."""
    from zoo.align.pairwise import align_pair
    from zoo.features.layers import reduce_array

    if len(maps) != 2:
        raise ZooError(f"--method {method} aligns exactly two layers; {len(maps)} were "
                       f"selected ({', '.join(maps)})")
    (kx, x), (ky, y) = maps.items()
    if len(x) < 2:
        raise ZooError("a held-out score needs at least 2 images; use more --data")
    k = min(*x.shape[1:3], *y.shape[1:3])
    ids = [str(i) for i in range(len(x))]
    rows = [reduce_array(b, "NCHW", ids, f"positions:{k}")[0] for b in (x, y)]
    groups = np.repeat(np.arange(len(x)), k * k)
    fit = align_pair(rows[0], rows[1], method, max(0.25, 1 / len(x)), groups, seed)
    return fit, [kx, ky]
