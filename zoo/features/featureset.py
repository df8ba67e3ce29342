"""A model's reduced features over one dataset, carrying their labels: the unit that
comparisons, matrices and reports consume."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.features.layers import LayerFeatures
from zoo.result import Result

if TYPE_CHECKING:
    import pandas as pd

    from zoo.data.dataset import Dataset
    from zoo.features.cache import FeatureCache
    from zoo.model.base import ZooModel
    from zoo.progress import Progress
    from zoo.registry.specs import LayerInfo


@dataclass(repr=False)
class FeatureSet(Result):
    """One model's layers (ordered by depth) over one dataset, each a `LayerFeatures` whose rows
    carry sample ids; `reduction` is recorded, `provenance` says where the weights came from."""

    model: str
    random_init: bool
    layers: list[LayerInfo]
    features: dict[str, LayerFeatures] = field(repr=False)
    reduction: str
    data: str
    provenance: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""  # the whole dataset's (a subset's parent): what ids refer to

    def __post_init__(self) -> None:
        """Every layer's rows in the first layer's order, paired by sample id (a layer that
        holds other samples is a DataError); the data's fingerprint from the features' keys."""
        from zoo.features.layers import align_rows

        if not self.features:  # the labels of a saved comparison, read back without features
            return
        self.features = align_rows({n: self.features[n] for n in self.names}) | {
            n: f for n, f in self.features.items() if n not in self.names}
        if not self.data_fingerprint and self.names:
            self.data_fingerprint = str(self.features[self.names[0]].meta.get("data", ""))

    marker = "ids.json"

    def __getitem__(self, layer: str) -> LayerFeatures:
        return self.features[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.layers]

    @property
    def roles(self) -> list[str]:
        return [i.role for i in self.layers]

    @property
    def label(self) -> str:
        """The model id, marked `[random init]` when the weights are random."""
        return self.model + (" [random init]" if self.random_init else "")

    @property
    def sample_ids(self) -> list[str]:
        """The row ids shared by every layer of the set."""
        return self.features[self.names[0]].sample_ids

    def arrays(self) -> list[np.ndarray]:
        """Each layer's (rows, dims) matrix, in layer order."""
        return [self.features[n].data for n in self.names]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per layer: name, role, depth, layout, shape, dtype."""
        return [{"layer": i.name, "role": i.role, "depth": i.depth, "layout": i.layout,
                 "shape": list(self[i.name].data.shape), "dtype": str(self[i.name].data.dtype)}
                for i in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """What manifest.json says: model, data, reduction, layers and provenance."""
        return {"model": self.model, "random_init": self.random_init, "data": self.data,
                "data_fingerprint": self.data_fingerprint,
                "samples": len(self.sample_ids), "reduction": self.reduction,
                "layers": self.rows(), "provenance": self.provenance}

    def table(self) -> pd.DataFrame:
        """One row per layer: name, role, depth, layout, shape, dtype."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def headline(self) -> str:
        return (f"{self.label}: {len(self)} layers x {len(self.sample_ids)} samples of "
                f"{self.data} ({self.reduction})")

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """<layer>.npy for every layer, ids.json and manifest.json, written as one folder."""
        from zoo.io import output_folder, write_json, write_npy

        with output_folder(folder, overwrite=overwrite) as tmp:
            for name in self.names:
                write_npy(tmp / f"{name}.npy", self[name].data)
            write_json(tmp / "ids.json", self.sample_ids)
            write_json(tmp / "manifest.json", {**self.to_dict(), "declarations": [
                i.as_dict() for i in self.layers]})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> FeatureSet:
        """A feature set saved by `save`, arrays memory-mapped."""
        import json

        from zoo.registry.specs import LayerInfo

        folder = Path(folder)
        info = json.loads((folder / "manifest.json").read_text())
        ids = json.loads((folder / "ids.json").read_text())
        layers = [LayerInfo(**d) for d in info["declarations"]]
        arrays = {i.name: np.load(folder / f"{i.name}.npy", mmap_mode="r", allow_pickle=False)
                  for i in layers}
        feats = {i.name: LayerFeatures(arrays[i.name], "NC" if arrays[i.name].ndim == 2
                                       else i.layout, list(ids)) for i in layers}
        return cls(info["model"], info["random_init"], layers, feats, info["reduction"],
                   info["data"], info["provenance"], info.get("data_fingerprint", ""))


def extract_set(model: ZooModel, dataset: Dataset, layers: Sequence[str] | None = None,
                reduction: str = "gap", batch_size: int = 16, cache: FeatureCache | None = None,
                progress: Progress | None = None, dtype: str = "float32",
                workers: int = 0, precision: str = "fp32") -> FeatureSet:
    """Extract `layers` (names or globs; None: all) of a loaded model, ordered by depth;
    `dtype` float16 halves the cache (stored precision, keyed apart); `workers` loader
    processes decode images; `precision` bf16/fp16 runs the forward under autocast."""
    from zoo.features.extraction import check_arguments, extract
    from zoo.model.selection import select_layers

    check_arguments(model, dataset, list(layers or []), reduction, batch_size, cache)
    names = select_layers(list(model.layers), layers, model.id)
    infos = sorted((model.layer(n) for n in names), key=lambda i: i.depth)
    feats = extract(model, dataset, [i.name for i in infos], reduction, batch_size, cache,
                    progress, dtype, workers=workers, precision=precision)
    return FeatureSet(model.id, model.random_init, infos, feats, reduction, dataset.name,
                      provenance_of(model), dataset.origin_fingerprint)


def provenance_of(model: ZooModel) -> dict[str, Any]:
    """Where a loaded model's weights and preprocessing came from, for every output."""
    return dict(model.provenance())
