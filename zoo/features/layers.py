"""Uniform layer features and the explicit reductions to a (samples, dims) matrix.

Arrays are channels-last: NCHW layers are stored (N, H, W, C), tokens (N, L, C), queries
(N, Q, C), vectors (N, C). Reductions never touch the channel (last) axis.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from zoo.errors import DataError, ZooError

REDUCTIONS = ("gap", "cls", "grid:K", "positions:K", "flatten", "none")
MAX_GRID = 1024  # no layer's map is larger; bounds the row ids of positions:K


@dataclass
class LayerFeatures:
    """A layer's features over a dataset: channels-last `data`, its layout, and row sample ids."""

    data: np.ndarray
    layout: str
    sample_ids: list[str]
    prefix_tokens: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        ndim = {"NCHW": 4, "NLC": 3, "NQC": 3, "NC": 2}[self.layout]
        if self.data.ndim != ndim:
            raise ValueError(f"{self.layout} features need {ndim} dims, got {self.data.shape}")
        if len(self.sample_ids) != self.data.shape[0]:
            raise ValueError(f"{len(self.sample_ids)} sample ids for {self.data.shape[0]} rows")

    @property
    def channels(self) -> int:
        return int(self.data.shape[-1])

    def spatial(self) -> np.ndarray:
        """(N, H, W, C) view for spatial layouts; ViT patch tokens are laid on their grid."""
        if self.layout == "NCHW":
            return self.data
        if self.layout == "NLC":
            patches = self.data[:, self.prefix_tokens:]
            side = math.isqrt(patches.shape[1])
            if side * side != patches.shape[1]:
                where = f"{self.meta.get('model', '?')}:{self.meta.get('layer', '?')}"
                raise ZooError(f"{where}: {patches.shape[1]} tokens after {self.prefix_tokens} "
                               "prefix tokens do not form a square grid; pick layers with a "
                               "pixel grid (see `zoo info`)")
            return patches.reshape(patches.shape[0], side, side, patches.shape[2])
        raise ZooError(f"layout {self.layout} has no spatial grid")

    def reduce(self, reduction: str) -> tuple[np.ndarray, list[str]]:
        """Reduce to a (rows, dims) matrix and its row ids (see `reduce_array`)."""
        return reduce_array(self.data, self.layout, self.sample_ids, reduction, self.prefix_tokens)


def parse_reduction(reduction: str) -> tuple[str, int | None]:
    """'grid:4' -> ('grid', 4); validates the name and argument."""
    if not isinstance(reduction, str):
        raise ZooError(f"reduction=: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    m = re.fullmatch(r"(gap|cls|flatten|none)|(grid|positions):(\d+)", reduction)
    if not m:
        raise ZooError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")
    if m.group(1):
        return m.group(1), None
    k = int(m.group(3))
    if not 1 <= k <= MAX_GRID:
        raise ZooError(f"reduction {reduction!r}: K must be between 1 and {MAX_GRID} (and at "
                       "most the layer's map size)")
    return m.group(2), k


def check_grid(reduction: str, k: int, height: int, width: int) -> None:
    """grid:K / positions:K pool a map to K x K: K larger than the map would repeat cells."""
    if k > min(height, width):
        raise ZooError(f"reduction {reduction!r}: the layer's map is {height} x {width}, "
                       f"smaller than {k} x {k}; use K <= {min(height, width)}")


def _adaptive_pool(maps: np.ndarray, k: int) -> np.ndarray:
    """Average-pool (N, H, W, C) to (N, K, K, C) with torch's adaptive-pool bin edges."""
    n, h, w, c = maps.shape
    out = np.empty((n, k, k, c), dtype=np.float64)
    for i in range(k):
        r0, r1 = (i * h) // k, -(-((i + 1) * h) // k)
        for j in range(k):
            c0, c1 = (j * w) // k, -(-((j + 1) * w) // k)
            out[:, i, j] = maps[:, r0:r1, c0:c1].mean(axis=(1, 2), dtype=np.float64)
    return out.astype(maps.dtype, copy=False)


def reduce_array(data: np.ndarray, layout: str, sample_ids: list[str], reduction: str,
                 prefix_tokens: int = 0) -> tuple[np.ndarray, list[str]]:
    """Reduce channels-last features to (rows, dims), pooling only spatial/token axes.

    gap: mean over space, patch tokens (prefix tokens excluded) or queries. cls: the first prefix
    token (vectors, layout NC, pass through gap and cls unchanged). grid:K: adaptive average pool
    to KxK then flatten. positions:K: pool to KxK and make
    each position a row (id `sample#p`). flatten: everything after N. none: as stored.
    """
    name, k = parse_reduction(reduction)
    feats = LayerFeatures(data, layout, sample_ids, prefix_tokens)
    n = data.shape[0]
    if name == "none" or (layout == "NC" and name in ("gap", "cls")):
        return data, list(sample_ids)
    if name == "flatten":
        return data.reshape(n, -1), list(sample_ids)
    if name == "cls":
        if layout != "NLC" or prefix_tokens < 1:
            raise ZooError(f"reduction 'cls' needs a token layer with a class token (got {layout}"
                           f" with {prefix_tokens} prefix tokens); use 'gap'")
        return data[:, 0], list(sample_ids)
    if name == "gap":
        if layout == "NLC":
            return data[:, prefix_tokens:].mean(axis=1), list(sample_ids)
        return data.reshape(n, -1, data.shape[-1]).mean(axis=1), list(sample_ids)
    if layout not in ("NCHW", "NLC"):
        raise ZooError(f"reduction {reduction!r} needs a spatial layer, got {layout}; use 'gap'")
    maps = feats.spatial()
    check_grid(reduction, k, maps.shape[1], maps.shape[2])
    pooled = _adaptive_pool(maps, k)
    if name == "grid":
        return pooled.reshape(n, -1), list(sample_ids)
    return pooled.reshape(n * k * k, -1), row_ids(sample_ids, reduction)


def row_ids(sample_ids: list[str], reduction: str) -> list[str]:
    """Row ids after `reduction`: sample ids, or `sample#p` per position for positions:K."""
    name, k = parse_reduction(reduction)
    if name != "positions":
        return list(sample_ids)
    return [f"{sid}#{p}" for sid in sample_ids for p in range(k * k)]


def pair_by_ids(a_ids: list[str], b_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices that pair A with B by sample id (in A's order); mismatched sets are an error."""
    if a_ids == b_ids:
        idx = np.arange(len(a_ids))
        return idx, idx
    b_index = {sid: i for i, sid in enumerate(b_ids)}
    if len(b_index) != len(b_ids) or len(set(a_ids)) != len(a_ids):
        raise DataError("duplicate sample ids: rows cannot be paired")
    missing_b = [s for s in a_ids if s not in b_index]
    missing_a = len(b_ids) - (len(a_ids) - len(missing_b))
    if missing_b or missing_a:
        example = missing_b[:3] or [s for s in b_ids if s not in set(a_ids)][:3]
        raise DataError(f"sample ids do not match: {len(missing_b)} only in A, {missing_a} only "
                        f"in B (e.g. {example}); extract both over the same data")
    return np.arange(len(a_ids)), np.array([b_index[s] for s in a_ids])


def align_rows(layers: dict[str, LayerFeatures]) -> dict[str, LayerFeatures]:
    """The layers with every one's rows in the first layer's id order, each paired by its own
    sample ids (a layer holding other samples is a `DataError`; aligned ones are kept as they
    are, never copied)."""
    names = list(layers)
    if not names:
        return {}
    ref = layers[names[0]].sample_ids
    out = {}
    for name in names:
        feats = layers[name]
        if feats.sample_ids == ref:
            out[name] = feats
            continue
        try:
            _, idx = pair_by_ids(ref, feats.sample_ids)
        except DataError as exc:
            raise DataError(f"layer {name} holds other samples than layer {names[0]}: {exc}"
                            ) from None
        out[name] = LayerFeatures(feats.data[idx], feats.layout, list(ref), feats.prefix_tokens,
                                  dict(feats.meta))
    return out


def check_same_data(a_name: str, a_fingerprint: str, b_name: str, b_fingerprint: str) -> None:
    """Sample ids pair rows only within one dataset: two sets over different data (another
    folder whose files share names, or changed files) are a `DataError`, never paired."""
    if a_name != b_name or (a_fingerprint and b_fingerprint and a_fingerprint != b_fingerprint):
        what = (f"{a_name} and {b_name}" if a_name != b_name else
                f"{a_name}, whose files changed between the two extractions")
        raise DataError(f"the feature sets were extracted over different data ({what}): "
                        "equal sample ids there name different images; extract both over "
                        "the same data")
