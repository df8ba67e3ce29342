"""Farthest-point sampling of graph landmarks, in a small PCA projection of the prepared rows.

FPS adds, one at a time, the row farthest from every landmark chosen so far, so landmarks cover
the feature cloud (small clusters included) instead of following its density. Distances are
taken in the top `FPS_DIMS` principal directions (a seeded randomized range finder, no dense
eigendecomposition). Up to POOL_PER_LANDMARK x m rows, FPS runs over all rows; above that it
runs over a seeded pool of that many rows (as ncut-pytorch draws its candidates), then one
blocked pass, an (n x m) matrix product, measures every row's distance to its nearest landmark,
and rows the pool left uncovered (farther than the pool's FPS radius: a small far cluster the
draw missed) join the pool for a second FPS round. No far cluster is then missed: every
first-round landmark is in the second pool, so by the triangle inequality every row lies within
r1 + r2 of a landmark (r1, r2 the two rounds' FPS radii), and every row beyond r1 is in the
second pool, within r2. A third round would only tighten that bound to an exact radius: on a
million rows of Gaussian clusters it took in 48 rows after the second (which had taken in
148,000 tail rows, as Gaussian tails lie beyond a small pool's radius) and cost 2 s of the
stage's 3.4. The cost is O(n m FPS_DIMS) in matrix products plus O(m^2 POOL_PER_LANDMARK
FPS_DIMS) in the sequential steps of the first round and O(m x second pool x FPS_DIMS) in the
second's, instead of m matrix-vector passes over all n rows.
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
POOL_PER_LANDMARK = 4  # FPS candidates per landmark above which rows are pooled
NEAREST_BLOCK = 1 << 21  # distances per block of the covering pass: 8 MiB, near the cache (at
# 1 << 24 the pass ran 4x slower: each block's distances went out to memory and back for amin;
# at 1 << 20, 1.2x slower, from the per-block calls)


def pca_basis(X: Any, prepare: Callable[[torch.Tensor], torch.Tensor], dims: int,
              device: str | torch.device, seed: int) -> torch.Tensor:
    """Top `dims` principal directions (d, dims) of the prepared rows of a seeded sample of at
    most PCA_ROWS rows, by a randomized range finder with two power iterations (a projection
    for FPS only: float32 and approximate directions are plenty)."""
    import torch

    n, d = X.shape
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(n, min(n, PCA_ROWS), replace=False))
    rows = prepare(rows_of(X, index, device)).float()
    rows -= rows.mean(0)
    dims = min(dims, d, len(rows))
    width = min(dims + 8, d, len(rows))
    probe = torch.from_numpy(rng.standard_normal((d, width)).astype(np.float32)).to(rows.device)
    space = torch.linalg.qr(rows @ probe).Q
    for _ in range(2):
        space = torch.linalg.qr(rows @ torch.linalg.qr(rows.T @ space).Q).Q
    _, _, vh = torch.linalg.svd(space.T @ rows, full_matrices=False)
    return vh[:dims].T.contiguous()


def farthest_point_sampling(X: Any, m: int, prepare: Callable[[torch.Tensor], torch.Tensor],
                            seed: int = 0, device: str | torch.device = "cpu",
                            chunk: int = 65536, progress: Progress | None = None) -> np.ndarray:
    """Indices of `m` landmarks of the rows of X by FPS (pooled above POOL_PER_LANDMARK x m
    rows, see the module doc), the first one drawn with `seed`.

    `prepare` maps raw rows to the rows the affinity sees (centred or normalised).
    """

    n = X.shape[0]
    if not 1 <= m <= n:
        raise ZooError(f"cannot pick {m} landmarks among {n} rows; use 1 <= n_landmarks <= {n}")
    basis = pca_basis(X, prepare, FPS_DIMS, device, seed)
    z = np.empty((n, basis.shape[1]), dtype=np.float32)
    for s, e in chunks(n, chunk):
        z[s:e] = (prepare(rows_of(X, slice(s, e), device)).float() @ basis).cpu().numpy()
    rng = np.random.default_rng(seed)
    if n <= POOL_PER_LANDMARK * m:
        return _fps(z, m, int(rng.integers(n)), progress)[0]
    pool = np.sort(rng.choice(n, POOL_PER_LANDMARK * m, replace=False))
    picked, radius = _fps(z[pool], m, int(rng.integers(len(pool))), progress)
    far = np.flatnonzero(_nearest_distance(z, z[pool[picked]], device, chunk) > radius)
    far = np.setdiff1d(far, pool, assume_unique=True)  # pool rows are covered by construction
    if len(far):  # a second round over the pool and the rows the first left uncovered
        pool = np.union1d(pool, far)
        picked = _fps(z[pool], m, int(rng.integers(len(pool))), progress)[0]
    return pool[picked]


def _fps(z: np.ndarray, m: int, first: int,
         progress: Progress | None) -> tuple[np.ndarray, float]:
    """FPS of m rows of z starting at `first`, and the covering radius (squared): every row of
    z lies within it of a chosen one. Single-threaded numpy steps (one (rows x dims)
    matrix-vector product each), which do not stall on a busy machine as thread pools do."""
    sq = np.einsum("ij,ij->i", z, z)
    chosen = np.empty(m, dtype=np.int64)
    chosen[0] = first
    nearest = np.full(len(z), np.inf, dtype=np.float32)
    step = max(1, m // 100)
    for k in range(1, m + 1):
        last = int(chosen[k - 1])
        d2 = sq - 2.0 * (z @ z[last]) + sq[last]  # ||z - z_last||^2
        np.minimum(nearest, d2, out=nearest)
        nearest[last] = -1.0  # never chosen twice, even among duplicated rows
        if k < m:
            chosen[k] = int(np.argmax(nearest))
        if progress and (k % step == 0 or k == m):
            progress("landmarks", k, m)
    return chosen, float(nearest.max())


def _nearest_distance(z: np.ndarray, marks: np.ndarray, device: str | torch.device,
                      chunk: int) -> np.ndarray:
    """Squared distance (n,) of every row of z to its nearest row of `marks`, in row blocks of
    one matrix product each: ||x - l||^2 = ||x||^2 + [x, 1] . [-2 l, ||l||^2], the landmark
    terms inside the product (as a bias added to its output they took a second pass over it:
    the covering pass ran 1.2-1.4x slower)."""
    import torch

    marks_t = torch.from_numpy(marks).to(device)
    right = torch.cat([-2.0 * marks_t, (marks_t * marks_t).sum(1, keepdim=True)], 1).T
    out = np.empty(len(z), dtype=np.float32)
    block = max(1, min(chunk, NEAREST_BLOCK // max(1, len(marks))))
    for s, e in chunks(len(z), block):
        rows = torch.from_numpy(z[s:e]).to(device)
        left = torch.cat([rows, torch.ones(e - s, 1, dtype=rows.dtype, device=device)], 1)
        out[s:e] = ((left @ right).amin(1) + (rows * rows).sum(1)).cpu().numpy()
    return out
