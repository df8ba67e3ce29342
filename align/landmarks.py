"""Farthest-point sampling of graph landmarks, in a small PCA projection of the prepared rows.

FPS adds, one at a time, the row farthest from every landmark chosen so far, so landmarks cover
the feature cloud (small clusters included) instead of following its density. Distances are
taken in the top `FPS_DIMS` principal directions: each step is then one (n x 32) matrix-vector
product instead of reading n x d numbers, about 1 ms per landmark for 10^5 rows on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.align.affinity import chunks, rows_of
from zoo.errors import ZooError
from zoo.progress import Progress

if TYPE_CHECKING:
    import torch

FPS_DIMS = 16
PCA_ROWS = 4096


def pca_basis(X: Any, prepare: Callable[[torch.Tensor], torch.Tensor], dims: int,
              device: str | torch.device, seed: int) -> torch.Tensor:
    """Top `dims` principal directions (d, dims) of the prepared rows, from the covariance of a
    seeded sample of at most PCA_ROWS rows (a projection for FPS only)."""
    import torch

    n = X.shape[0]
    index = np.sort(np.random.default_rng(seed).choice(n, min(n, PCA_ROWS), replace=False))
    rows = prepare(rows_of(X, index, device))
    rows -= rows.mean(0)
    _, vecs = torch.linalg.eigh(rows.T @ rows)  # float32 is plenty for a projection
    return vecs[:, -min(dims, X.shape[1]):].flip(1).contiguous()


def farthest_point_sampling(X: Any, m: int, prepare: Callable[[torch.Tensor], torch.Tensor],
                            seed: int = 0, device: str | torch.device = "cpu",
                            chunk: int = 65536, progress: Progress | None = None) -> np.ndarray:
    """Indices of `m` landmarks of the rows of X by FPS, the first one drawn with `seed`.

    `prepare` maps raw rows to the rows the affinity sees (centred or normalised).
    """
    import torch

    n = X.shape[0]
    if not 1 <= m <= n:
        raise ZooError(f"cannot pick {m} landmarks among {n} rows; use 1 <= n_landmarks <= {n}")
    basis = pca_basis(X, prepare, FPS_DIMS, device, seed)
    # Filled in place: small pieces kept between large temporaries fragment the heap.
    z = torch.empty(n, basis.shape[1], device=device)
    for s, e in chunks(n, chunk):
        torch.mm(prepare(rows_of(X, slice(s, e), device)), basis, out=z[s:e])
    sq = (z * z).sum(1)
    chosen = np.empty(m, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(n)
    nearest = torch.full((n,), float("inf"), device=device)
    step = max(1, m // 100)
    for k in range(1, m + 1):
        last = int(chosen[k - 1])
        d2 = torch.addmv(sq, z, z[last], alpha=-2.0).add_(sq[last])  # ||z - z_last||^2
        torch.minimum(nearest, d2, out=nearest)
        nearest[last] = -1.0  # never chosen twice, even among duplicated rows
        if k < m:
            chosen[k] = int(torch.argmax(nearest))
        if progress and (k % step == 0 or k == m):
            progress("landmarks", k, m)
    return chosen
