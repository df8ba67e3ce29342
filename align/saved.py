"""Saved cut and alignment folders read back into `CutRun` and `AlignRun` (`zoo.open`).

In the JSON a float that was NaN is null, so a field that can be None in the run (a layer's
alignment R^2 under learned maps, its content bias and segmentation without masks) is left
out instead of being written as null: absent means None, null means NaN.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.result import NotSaved, number, numbers, reading

if TYPE_CHECKING:
    from zoo.align.aligned import CutResult
    from zoo.align.pipeline import AlignRun, CutRun

CUT_SETTINGS = ("n_eig", "affinity", "seed", "shared_space")  # what `cut` records as settings
BLOCK_FIELDS = ("nodes", "shape", "scores")  # what cut.json adds to a block's info


def block_scores(result: CutResult, key: str) -> dict[str, Any]:
    """One block's alignment R^2, positional bias and segmentation score, as cut.json holds
    them (None fields left out)."""
    seg = result.segmentation.get(key)
    out: dict[str, Any] = {"bias": {k: v for k, v in asdict(result.bias[key]).items()
                                    if v is not None}}
    if key in result.alignment:
        out["alignment"] = result.alignment[key]
    if seg is not None:
        out["segmentation"] = asdict(seg)
    return out


def read_cut(folder: str | Path) -> CutRun:
    """The `CutRun` that `write_cut` saved in `folder`, without features or images."""
    from zoo.align.aligned import CutResult
    from zoo.align.bias import PositionalBias
    from zoo.align.joint import JointLayout
    from zoo.align.nystrom import NcutResult
    from zoo.align.pipeline import Blocks, CutRun
    from zoo.align.segment import SegmentationScore
    from zoo.data.dataset import Dataset

    folder = Path(folder)
    with reading(folder, "zoo.align.cut (zoo cut)"):
        info = json.loads((folder / "cut.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False)
                  for name in ("eigvecs", "colours", "landmarks")}
        trajectory = folder / "trajectory.npy"
        blocks = info["blocks"]
        layout = JointLayout(tuple(b["key"] for b in blocks),
                             tuple(tuple(b["shape"]) for b in blocks))
        cut = NcutResult(arrays["eigvecs"], np.asarray(info["eigvals"], np.float64),
                         info["sigma"], arrays["landmarks"], info["affinity"],
                         info["landmark_directions"], info.get("precision", "float64"),
                         info.get("precision_note", ""))
        result = CutResult(cut, layout, arrays["colours"],
                           np.load(trajectory, allow_pickle=False) if trajectory.is_file()
                           else None)
        for b in blocks:
            scores, key = b["scores"], b["key"]
            result.bias[key] = PositionalBias(**numbers(scores["bias"]))
            if "alignment" in scores:
                result.alignment[key] = number(scores["alignment"])
            if "segmentation" in scores:
                seg = scores["segmentation"]
                result.segmentation[key] = SegmentationScore(
                    number(seg["miou"]), number(seg["threshold"]),
                    {int(k): number(v) for k, v in seg["class_iou"].items()},
                    np.asarray(seg["curve"], np.float64),
                    np.asarray(seg["thresholds"], np.float64))
        ids = list(info["sample_ids"])
        images = NotSaved(f"the images of {info['data']} are not saved with a cut read back "
                          f"from {folder}; open them again with zoo.dataset({info['data']!r})")
        dataset = Dataset(info["data"], ids, [images] * len(ids), info["data_fingerprint"],
                          [images] * len(ids) if result.segmentation else None)
        features = NotSaved(f"the layers' features are not saved with a cut read back from "
                            f"{folder}; extract them again (zoo.align.cut or zoo.extract)")
        info_rows = [{k: v for k, v in b.items() if k not in BLOCK_FIELDS} for b in blocks]
        return CutRun(result, Blocks(dataset, features, info_rows),
                      {k: info[k] for k in CUT_SETTINGS})


def read_align(folder: str | Path) -> AlignRun:
    """The `AlignRun` that `write_align` saved in `folder`: a pairwise fit (pairwise.json) or
    learned maps with their scores and training history (maps.json)."""
    from zoo.align.maps import MANIFEST, load_maps
    from zoo.align.pairwise import PairwiseAlignment
    from zoo.align.pipeline import AlignRun

    folder = Path(folder)
    with reading(folder, "zoo.align.align (zoo align)"):
        if (folder / "pairwise.json").is_file():
            scores = numbers(json.loads((folder / "pairwise.json").read_text()))
            x_map, y_map, x_mean, y_mean = (np.load(folder / f"{name}.npy", allow_pickle=False)
                                            for name in ("x_map", "y_map", "x_mean", "y_mean"))
            fit = PairwiseAlignment(scores["method"], x_mean, y_mean, x_map, y_map,
                                    scores["score"], scores["train_score"], scores["n_train"],
                                    scores["n_test"])
            return AlignRun(scores["method"], scores, fit=fit)
        info = json.loads((folder / MANIFEST).read_text())
        meta = numbers({k: v for k, v in info.items()
                        if k not in ("dim", "maps", "scores", "history")})
        return AlignRun("learned", numbers(info["scores"]), load_maps(folder),
                        [numbers(row) for row in info["history"]], meta=meta)
