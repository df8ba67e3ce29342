"""Normalized cut (top eigenvectors of D^-1/2 W D^-1/2) with a Nystrom extension, and exactly.

Nystrom (Fowlkes, Belongie, Chung, Malik 2004, one-shot form): with K (n, m) the affinities of
every node to m landmarks and A (m, m) those among the landmarks, the full graph is approximated
by W ~ K A^+ K^T (exact on the landmark rows). Stable form: with A = Q S Q^T, keep the
directions float64 resolves (s > m eps s_max), R = Q_r S_r^-1/2 and Phi = K R (n, r), so that
W ~ Phi Phi^T. Degrees d = Phi (Phi^T 1), Phi~ = D^-1/2 Phi, and the eigenvectors of
C = Phi~^T Phi~ = V L V^T give those of the normalised graph, U = Phi~ V L^-1/2, eigenvalues L.
Phi is formed column by column before any Gram matrix: each small direction then keeps its own
scale, whereas sandwiching a Gram matrix of K between A^-1/2 factors amplifies its rounding by
the condition number of A (float32 rounding times 1e7 is an error of order 1). Everything from
the affinities on is float64, so with every node a landmark the result is the exact cut to
float64 rounding. Landmark directions below the cut-off carry nothing float64 can resolve (they
are near-duplicate landmarks at this sigma); dropping them is announced by a
`DroppedDirectionsWarning`. Cost O(n m (d + m)): three chunked passes over the rows (column
sums of K, then C, then U), with K held when n x m float64 fits in CACHE_BYTES, else
recomputed per pass so memory stays O(chunk x m + m^2) beyond the result.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.align.affinity import (Kernel, as_matrix, check_affinity, chunks, estimate_sigma,
                                row_mean, rows_of)
from zoo.align.landmarks import farthest_point_sampling
from zoo.errors import ZooError
from zoo.progress import Progress

if TYPE_CHECKING:
    import torch

DEFAULT_LANDMARKS = 2048
CHUNK_BYTES = 1 << 25  # float64 bytes of one (chunk, m) affinity block: 32 MiB
CACHE_BYTES = 1 << 31  # K (n, m) float64 is held between passes when it fits in 2 GiB
EPS = float(np.finfo(np.float64).eps)


class DroppedDirectionsWarning(UserWarning):
    """Landmark-kernel directions below float64 resolution were left out of the Nystrom cut."""


@dataclass(frozen=True)
class NcutResult:
    """Top eigenvectors (n, n_eig) of the normalised affinity, largest eigenvalue first.

    `sigma` is the bandwidth used (reuse it to cut related sets on the same scale) and
    `landmarks` the node indices the Nystrom extension was built on (empty for `exact_ncut`).
    Each eigenvector's sign is fixed so that its largest-magnitude entry is positive.
    """

    eigvecs: np.ndarray
    eigvals: np.ndarray
    sigma: float
    landmarks: np.ndarray
    affinity: str


def _check_args(X: Any, n_eig: int, affinity: str, sigma: float | None) -> Any:
    X = as_matrix(X)
    check_affinity(affinity)
    if not 1 <= n_eig <= X.shape[0]:
        raise ZooError(f"n_eig={n_eig} must be between 1 and the number of rows ({X.shape[0]})")
    if sigma is not None and not sigma > 0:
        raise ZooError(f"sigma must be > 0, got {sigma}")
    return X


def _kernel(X: Any, affinity: str, sigma: float | None, seed: int,
            device: str | torch.device, chunk: int) -> Kernel:
    if sigma is None:
        sigma = estimate_sigma(X, affinity, seed, device)
    center = row_mean(X, device, chunk) if affinity == "rbf" else None
    return Kernel(affinity, float(sigma), center)


def _fix_signs(vecs: np.ndarray) -> np.ndarray:
    """Flip columns so each one's largest-magnitude entry is positive (a deterministic sign)."""
    peak = vecs[np.abs(vecs).argmax(0), np.arange(vecs.shape[1])]
    return vecs * np.where(peak < 0, -1.0, 1.0).astype(vecs.dtype)


def _landmark_basis(A: torch.Tensor, sigma: float) -> torch.Tensor:
    """R = Q_r S_r^-1/2 (m, r) from A = Q S Q^T over the eigenvalues float64 resolves
    (s > m eps s_max, the rounding level of eigh); warns when directions are dropped."""
    import torch

    vals, vecs = torch.linalg.eigh(A)
    keep = vals > len(A) * EPS * vals.max()
    dropped = len(A) - int(keep.sum())
    if dropped:
        warnings.warn(
            f"{dropped} of {len(A)} Nystrom landmark directions are below float64 resolution "
            f"(kernel eigenvalue < {len(A) * EPS:.1e} x the largest) and were dropped: those "
            f"landmarks (near-)duplicate others at sigma={sigma:.4g}, so they add nothing to "
            f"the cut. Use fewer landmarks (about {len(A) - dropped}) for the same result "
            "faster, or a smaller sigma to resolve finer structure.",
            DroppedDirectionsWarning, stacklevel=3)
    return vecs[:, keep] / vals[keep].sqrt()


def _gram(x: torch.Tensor) -> torch.Tensor:
    """x^T x; on CPU through numpy, whose matmul uses the symmetric rank-k BLAS kernel."""
    import torch

    if x.device.type != "cpu":
        return x.T @ x
    rows = x.numpy()
    return torch.from_numpy(rows.T @ rows)


def ncut(X: Any, n_eig: int = 20, n_landmarks: int = DEFAULT_LANDMARKS,
         sigma: float | None = None, affinity: str = "rbf", seed: int = 0,
         device: str = "cpu", chunk_rows: int | None = None,
         progress: Progress | None = None) -> NcutResult:
    """Normalized-cut eigenvectors of the rows of X (numpy, memmap or tensor) by Nystrom.

    Landmarks by farthest-point sampling (capped at n); `sigma=None` takes the median-distance
    bandwidth over seeded pairs. With n_landmarks >= n the result is the exact normalized cut.
    """
    import torch

    X = _check_args(X, n_eig, affinity, sigma)
    n = X.shape[0]
    m = min(n_landmarks, n)
    if m < n_eig:
        raise ZooError(f"n_landmarks={n_landmarks} is below n_eig={n_eig}; the landmark graph "
                       "has at most n_landmarks eigenvectors")
    chunk = chunk_rows or max(256, CHUNK_BYTES // (8 * m))
    kernel = _kernel(X, affinity, sigma, seed, device, chunk)
    landmarks = farthest_point_sampling(X, m, kernel.prepare, seed, device, chunk, progress)
    marks = kernel.prepare(rows_of(X, np.sort(landmarks), device, torch.float64))
    basis = _landmark_basis(kernel(marks, marks), kernel.sigma)
    if basis.shape[1] < n_eig:
        raise ZooError(f"the landmark graph resolves only {basis.shape[1]} directions for "
                       f"n_eig={n_eig}; lower n_eig or use a smaller sigma")
    starts = list(chunks(n, chunk))
    keep = n * m * 8 <= CACHE_BYTES
    cached: list[torch.Tensor] = []

    def affinities(k: int) -> torch.Tensor:
        """Block k of K (chunk rows x landmarks, float64): from the cache, or computed."""
        if k < len(cached):
            return cached[k]
        start, stop = starts[k]
        block = kernel(kernel.prepare(rows_of(X, slice(start, stop), device, torch.float64)),
                       marks)
        if keep:
            cached.append(block)
        return block

    colsum = torch.zeros(m, dtype=torch.float64, device=device)
    for k in range(len(starts)):
        colsum += affinities(k).sum(0)
        _report(progress, "degrees", k, len(starts))
    total = basis.T @ colsum  # Phi^T 1
    degrees = torch.empty(n, dtype=torch.float64, device=device)
    gram = torch.zeros(basis.shape[1], basis.shape[1], dtype=torch.float64, device=device)
    for k, (start, stop) in enumerate(starts):
        phi = affinities(k) @ basis
        degrees[start:stop] = _degrees(phi, total)
        gram += _gram(phi * degrees[start:stop].rsqrt()[:, None])
        _report(progress, "graph", k, len(starts))
    vals, vecs = torch.linalg.eigh(gram)
    vals, vecs = vals.flip(0)[:n_eig], vecs.flip(1)[:, :n_eig]
    if not bool((vals > 0).all()):
        raise ZooError(f"the landmark graph has only {int((vals > 0).sum())} usable eigenvectors "
                       f"for n_eig={n_eig}; lower n_eig, add landmarks or raise sigma")
    project = basis @ vecs / vals.sqrt()
    out = np.empty((n, n_eig), dtype=np.float32)
    for k, (start, stop) in enumerate(starts):
        vecs_k = (affinities(k) @ project) * degrees[start:stop].rsqrt()[:, None]
        out[start:stop] = vecs_k.cpu().numpy()
        _report(progress, "eigenvectors", k, len(starts))
    return NcutResult(_fix_signs(out), vals.cpu().numpy(), kernel.sigma, landmarks, affinity)


def _degrees(phi: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Nystrom degrees d = Phi (Phi^T 1) of a block of rows; a non-positive degree means the
    approximation broke down, which is an error rather than a clamp."""
    degree = phi @ total
    if not bool((degree > 0).all()):
        raise ZooError("Nystrom degrees are not all positive: the landmarks do not cover the "
                       "data at this sigma; add landmarks or raise sigma")
    return degree


def _report(progress: Progress | None, task: str, k: int, total: int) -> None:
    if progress:
        progress(task, k + 1, total)


def exact_ncut(X: Any, n_eig: int = 20, sigma: float | None = None, affinity: str = "rbf",
               seed: int = 0, device: str = "cpu", chunk_rows: int = 4096,
               progress: Progress | None = None) -> NcutResult:
    """The reference: dense float64 W (n^2 memory), normalised, top eigenvectors by Lanczos.

    For checks and benchmarks on graphs that fit in memory; `seed` only picks sigma's pairs.
    """
    import torch
    from scipy.sparse.linalg import eigsh

    X = _check_args(X, n_eig, affinity, sigma)
    n = X.shape[0]
    kernel = _kernel(X, affinity, sigma, seed, device, chunk_rows)
    rows = kernel.prepare(rows_of(X, slice(0, n), device, torch.float64))
    W = np.empty((n, n), dtype=np.float64)
    starts = list(chunks(n, chunk_rows))
    for k, (start, stop) in enumerate(starts):
        W[start:stop] = kernel(rows[start:stop], rows).cpu().numpy()
        _report(progress, "exact graph", k, len(starts))
    scale = 1.0 / np.sqrt(W.sum(1))
    W *= scale[:, None]
    W *= scale[None, :]
    if n_eig >= n - 1 or n <= 2000:
        vals, vecs = np.linalg.eigh(W)
        vals, vecs = vals[::-1][:n_eig], vecs[:, ::-1][:, :n_eig]
    else:
        vals, vecs = eigsh(W, k=n_eig, which="LA", tol=1e-10, v0=np.ones(n))
        vals, vecs = vals[::-1], vecs[:, ::-1]
    return NcutResult(_fix_signs(np.ascontiguousarray(vecs)), vals.copy(), kernel.sigma,
                      np.empty(0, dtype=np.int64), affinity)


def subspace_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the column spaces of a and b (descending)."""
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    return np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)
