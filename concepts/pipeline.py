"""Dissect a model and embed dissections, from model ids to saved results.

    run = zoo.concepts.dissect_model("resnet-ssl", "synthetic", random_init=True)
    run.table(); run.save("runs/dissect")
    emb = zoo.concepts.embed(["runs/dissect"]); emb.save("runs/lce")

Layers are extracted and dissected one at a time, each written to the feature cache batch by
batch and read back as a memory map chunk by chunk, so memory holds about one batch of one
layer's maps whatever the number of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.concepts.dissection import check_settings
from zoo.result import Result

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from zoo.concepts.dissection import Dissection
    from zoo.concepts.embedding import LCEResult
    from zoo.concepts.labels import ConceptSet
    from zoo.model.base import ZooModel
    from zoo.progress import Progress


@dataclass(repr=False)
class DissectRun(Result):
    """A model's layers dissected on one concept set: per layer a `Dissection` (and label
    stability when resampled), with the settings used.

    A run read back by `load` (`zoo.open`) has every layer's IoU, thresholds, labels and
    profile; its `concepts` is the concept set's concepts, sample ids and fingerprint without
    the images and labels (reading an image, a label or its dataset is a ZooError).
    """

    model: str
    random_init: bool
    concepts: ConceptSet = field(repr=False)
    layers: dict[str, Dissection] = field(repr=False)
    stability: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.model + (" [random init]" if self.random_init else "")

    def rows(self) -> list[dict[str, Any]]:
        """Per layer: units, labelled units, profile (units per concept) and per category."""
        return [{"layer": name, "units": d.units, "labelled": int((d.labels() >= 0).sum()),
                 "profile": d.profile(), "abstracted": d.abstracted()}
                for name, d in self.layers.items()]

    def table(self) -> pd.DataFrame:
        """One row per layer (see `rows`)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    marker = "dissect.json"

    def headline(self) -> str:
        return f"{self.label}: {len(self.layers)} layers on {self.concepts.name}"

    def to_dict(self) -> dict[str, Any]:
        """What dissect.json says about the run."""
        return {"model": self.model, "random_init": self.random_init,
                "concepts": self.concepts.name, "images": len(self.concepts), **self.settings,
                "concepts_fingerprint": self.concepts.fingerprint}

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Per layer units/profile/abstracted CSV, iou.npy and profile.png; then concepts.csv
        and dissect.json (with the sample ids), as one folder."""
        from zoo.concepts.plot import plot_profile
        from zoo.concepts.report import layer_folder, write_layer, write_summary
        from zoo.io import output_folder

        with output_folder(folder, overwrite=overwrite) as tmp:
            entries = []
            for name, d in self.layers.items():
                entries.append(write_layer(tmp, name, d, self.stability.get(name)))
                plot_profile(d, f"{self.label} {name}", layer_folder(tmp, name) / "profile.png")
            write_summary(tmp, {**self.to_dict(), "sample_ids": self.concepts.ids},
                          self.concepts.concepts, entries)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> DissectRun:
        """A dissection saved by `save` (see the class doc for what its concepts lack)."""
        from zoo.concepts.saved import read_dissect

        return read_dissect(folder)


def dissect_model(model: str | ZooModel, concepts: str = "synthetic",
                  layers: str | Sequence[str] | None = None, *, quantile: float = 0.005,
                  iou_cutoff: float = 0.04, stability: int = 0, weights: str | None = None,
                  random_init: bool = False, device: str = "cpu", batch_size: int = 16,
                  cache: bool = True, progress: Progress | None = None) -> DissectRun:
    """Label the units of every spatial layer (or `layers`) with concepts (Network Dissection:
    top-`quantile` activation masks, IoU against concept masks, labelled above `iou_cutoff`)."""
    import contextlib
    import tempfile

    from zoo.concepts.dissection import dissect
    from zoo.concepts.sources import open_concepts
    from zoo.concepts.stability import label_stability
    from zoo.features.cache import FeatureCache, as_cache
    from zoo.features.extraction import extract
    from zoo.model.loading import load_model
    from zoo.model.selection import NO_GRID, select_for, split_names
    from zoo.progress import tagged

    check_settings(quantile, iou_cutoff)
    zmodel = load_model(model, weights=weights, random_init=random_init, device=device)
    names = select_for({zmodel.id: list(zmodel.layers)}, split_names(layers),
                       keep=lambda _, n: zmodel.layers[n].has_grid,
                       what="spatial layer",
                       excluded=NO_GRID)[zmodel.id]
    concept_set = open_concepts(concepts)
    data = concept_set.dataset()
    out, stable = {}, {}
    with contextlib.ExitStack() as stack:
        # features go to disk batch by batch and are read back as a memory map, chunk by
        # chunk: memory holds about one batch of one layer however many images there are
        # (without the cache, a temporary one that is deleted afterwards)
        store = as_cache(cache) or FeatureCache(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-dissect-")))
        for name in names:
            feats = extract(zmodel, data, [name], "none", batch_size, store,
                            tagged(progress, name), mmap=True)[name]
            out[name] = dissect(feats, concept_set, quantile=quantile, iou_cutoff=iou_cutoff,
                                progress=tagged(progress, name))
            if stability:
                stable[name] = label_stability(feats, concept_set, out[name], stability,
                                               progress=tagged(progress, name))
            del feats
            if not cache:
                store.remove()
    return DissectRun(zmodel.id, zmodel.random_init, concept_set, out, stable,
                      {"quantile": quantile, "iou_cutoff": iou_cutoff,
                       "stability_resamples": stability})


def embed(folders: Sequence[str | Path], layers: str | Sequence[str] | None = None, *,
          performance: str | Path | None = None, max_k: int = 8,
          seed: int = 0) -> LCEResult:
    """The Learned Concepts Embedding of the profiles in `zoo dissect` folders: PCA to 3 axes,
    KMeans with an elbow, axes correlated with categories and (a model,task,score CSV) with
    downstream performance."""
    from zoo.concepts.embedding import lce, read_performance
    from zoo.concepts.report import read_profiles
    from zoo.model.selection import split_names

    entries = read_profiles(folders, split_names(layers))
    return lce(entries, 3, max_k, seed, read_performance(performance) if performance else None)
