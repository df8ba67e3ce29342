"""A model's reduced features over one dataset, carrying their labels: the unit that
comparisons, matrices and reports consume."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.features import LayerFeatures

if TYPE_CHECKING:
    import pandas as pd

    from zoo.cache import FeatureCache
    from zoo.data import Dataset
    from zoo.model import ZooModel
    from zoo.progress import Progress
    from zoo.specs import LayerInfo


@dataclass
class FeatureSet:
    """One model's layers (ordered by depth) over one dataset, each a `LayerFeatures` whose rows
    carry sample ids; `reduction` is recorded, `provenance` says where the weights came from."""

    model: str
    random_init: bool
    layers: list[LayerInfo]
    features: dict[str, LayerFeatures] = field(repr=False)
    reduction: str
    data: str
    provenance: dict[str, Any] = field(default_factory=dict)

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

    def summary(self) -> pd.DataFrame:
        """One row per layer: name, role, depth, layout, shape."""
        import pandas as pd

        return pd.DataFrame([{"layer": i.name, "role": i.role, "depth": i.depth,
                              "layout": i.layout, "shape": tuple(self[i.name].data.shape)}
                             for i in self.layers])


def extract_set(model: ZooModel, dataset: Dataset, layers: Sequence[str] | None = None,
                reduction: str = "gap", batch_size: int = 16, cache: FeatureCache | None = None,
                progress: Progress | None = None) -> FeatureSet:
    """Extract `layers` (names or globs; None: all) of a loaded model, ordered by depth."""
    from zoo.extraction import extract, select_layers

    names = select_layers(list(model.layers), layers, model.id)
    infos = sorted((model.layer(n) for n in names), key=lambda i: i.depth)
    feats = extract(model, dataset, [i.name for i in infos], reduction, batch_size, cache,
                    progress)
    return FeatureSet(model.id, model.random_init, infos, feats, reduction, dataset.name,
                      provenance_of(model))


def provenance_of(model: ZooModel) -> dict[str, Any]:
    """Where a loaded model's weights and preprocessing came from, for every output."""
    if hasattr(model, "provenance"):
        return dict(model.provenance())
    return {"model": model.id, "weights_source": model.weights_source,
            "fingerprint": model.fingerprint, "random_init": model.random_init,
            "transform": model.input.key()}
