"""Unit activation maps on their spatial grid, read a few images at a time, and bilinear upsampling.

Arrays are channels-last, as `LayerFeatures` stores them: NCHW layers as (N, H, W, C) and ViT
tokens as (N, L, C) with `prefix_tokens` class/register tokens first (dropped; the patch tokens
are laid on their square grid).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from functools import lru_cache

import numpy as np

from zoo.errors import DataError, ZooError
from zoo.features.layers import LayerFeatures, pair_by_ids

CHUNK_VALUES = 1 << 20
RELEASE_BYTES = 1 << 24  # a memory map's pages read since the last release, at most


class UnitMaps:
    """Per-unit spatial maps of a layer over a dataset, rows in a chosen order, read in chunks.

    `order[j]` is the row of `data` that holds sample j; slices are converted to float32 maps
    only when read, so a memory-mapped array is never loaded whole, and the pages read are
    handed back every `RELEASE_BYTES` (they stay in the page cache, out of this process's
    resident memory), so memory stays bounded by a chunk whatever the dataset size.
    """

    def __init__(self, acts: LayerFeatures | np.ndarray, layout: str | None = None,
                 prefix_tokens: int = 0, ids: Sequence[str] | None = None) -> None:
        if isinstance(acts, LayerFeatures):
            self.data, self.layout, self.prefix = acts.data, acts.layout, acts.prefix_tokens
            self.row_ids: list[str] | None = list(acts.sample_ids)
        else:
            arr = np.asanyarray(acts)
            self.layout = layout or {4: "NCHW", 3: "NLC"}.get(arr.ndim, "")
            self.data, self.prefix, self.row_ids = arr, prefix_tokens, None
        if self.layout not in ("NCHW", "NLC"):
            raise ZooError(f"dissection needs spatial maps (layout NCHW or NLC tokens), got "
                           f"{self.layout or acts.shape}; pick a convolutional or token layer")
        self.order = np.arange(len(self.data))
        self._map = _mapping(self.data)
        self._touched = 0
        if ids is not None:
            self.align(ids)
        self.grid = self.read(self.order[:1]).shape[1:3] if len(self.data) else (0, 0)

    @property
    def units(self) -> int:
        return int(self.data.shape[-1])

    def __len__(self) -> int:
        return len(self.order)

    def align(self, ids: Sequence[str]) -> None:
        """Reorder rows to follow `ids` (by sample id when the rows have ids, else by count)."""
        if self.row_ids is None:
            if len(ids) != len(self.data):
                raise DataError(f"{len(self.data)} activation rows for {len(ids)} labelled images;"
                                " pass activations of exactly the labelled images, in order")
            return
        _, self.order = pair_by_ids(list(ids), self.row_ids)

    def read(self, samples: np.ndarray) -> np.ndarray:
        """Maps of the samples at positions `samples` as float32 (b, h, w, C)."""
        rows = self.order[samples]
        chunk = LayerFeatures(np.asarray(self.data[rows], dtype=np.float32), self.layout,
                              [str(r) for r in rows], self.prefix)
        if self._map is not None:
            self._touched += self.data[:1].nbytes * len(rows)
            if self._touched >= RELEASE_BYTES:
                self._map.madvise(mmap.MADV_DONTNEED)
                self._touched = 0
        return np.ascontiguousarray(chunk.spatial())

    def chunks(self, size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(sample positions, maps) over all samples, `size` images at a time (default: about
        `CHUNK_VALUES` values, which keeps the working set in cache)."""
        size = size or max(1, CHUNK_VALUES // max(1, self.grid[0] * self.grid[1] * self.units))
        for start in range(0, len(self), size):
            part = np.arange(start, min(start + size, len(self)))
            yield part, self.read(part)


def _mapping(data: np.ndarray) -> mmap.mmap | None:
    """The read-only memory map behind `data` (a cache entry opened with mmap), else None."""
    base = data
    while isinstance(base, np.ndarray):
        base = base.base
    ok = isinstance(base, mmap.mmap) and hasattr(base, "madvise") and not data.flags.writeable
    return base if ok else None


@lru_cache(maxsize=64)
def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out, in) weights of bilinear resampling with half-pixel centres (align_corners=False)."""
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0, in_size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    mat = np.zeros((out_size, in_size))
    np.add.at(mat, (np.arange(out_size), lo), 1 - frac)
    np.add.at(mat, (np.arange(out_size), hi), frac)
    mat.setflags(write=False)
    return mat


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resample channels-last (b, h, w, C) maps to (b, H, W, C), in float32."""
    b, h, w, c = maps.shape
    if (h, w) == tuple(size):
        return maps.astype(np.float32, copy=False)
    rows = bilinear_matrix(size[0], h).astype(np.float32)
    cols = bilinear_matrix(size[1], w).astype(np.float32)
    out = np.matmul(rows, maps.reshape(b, h, w * c)).reshape(b, size[0], w, c)
    return np.einsum("Ww,bHwc->bHWc", cols, out, optimize=True)
