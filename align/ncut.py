"""Normalized cut (top eigenvectors of D^-1/2 W D^-1/2) with a Nystrom extension, and exactly.

Nystrom (Fowlkes, Belongie, Chung, Malik 2004, one-shot form): with K (n, m) the affinities of
every node to m landmarks and A (m, m) those among the landmarks, the full graph is approximated
by W ~ K A^-1 K^T (exact on the landmark rows). Its degrees are d = K A^-1 (K^T 1), and with
K~ = D^-1/2 K, G = K~^T K~ and A^-1/2 G A^-1/2 = U L U^T, the columns of
V = K~ A^-1/2 U L^-1/2 are orthonormal eigenvectors of D^-1/2 W D^-1/2 with eigenvalues L.
Every node gets its eigenvector entries from its affinities to all landmarks through this
closed form (no nearest-neighbour averaging). Cost O(n m (d + m)): three chunked passes over the
rows (column sums of K, then G, then V), with K computed once and held when n x m float32 fits
in CACHE_BYTES, else recomputed per pass so memory stays O(chunk x m + m^2) beyond the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.align.affinity import (Kernel, as_matrix, check_affinity, chunks, estimate_sigma,
                                row_mean, rows_of)
from zoo.align.landmarks import farthest_point_sampling
from zoo.errors import ZooError

if TYPE_CHECKING:
    import torch

Progress = Callable[[str, int, int], None]
DEFAULT_LANDMARKS = 2048
CHUNK_BYTES = 1 << 25  # float32 bytes of one (chunk, m) affinity block: 32 MiB
CACHE_BYTES = 1 << 30  # K (n, m) is held between passes when it fits in 1 GiB, else recomputed
RCOND = 1e-7  # landmark-graph eigenvalues below RCOND x the largest are dropped (pseudo-inverse)


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


def _inv_sqrt(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A^-1/2 and A^-1 of a symmetric PSD matrix, as pseudo-inverses (eigenvalues < RCOND x max
    are treated as 0: near-duplicate landmarks carry no extra information)."""
    import torch

    vals, vecs = torch.linalg.eigh(A)
    keep = vals > RCOND * vals.max()
    vals, vecs = vals[keep], vecs[:, keep]
    return (vecs / vals.sqrt()) @ vecs.T, (vecs / vals) @ vecs.T


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
    chunk = chunk_rows or max(256, CHUNK_BYTES // (4 * m))
    kernel = _kernel(X, affinity, sigma, seed, device, chunk)
    landmarks = farthest_point_sampling(X, m, kernel.prepare, seed, device, chunk, progress)
    order = np.sort(landmarks)
    marks = kernel.prepare(rows_of(X, order, device, torch.float64))
    A = kernel(marks, marks)
    A_isqrt, A_inv = _inv_sqrt(A)
    marks = marks.float()
    starts = list(chunks(n, chunk))
    keep = n * m * 4 <= CACHE_BYTES
    cached: list[torch.Tensor] = []

    def affinities(k: int) -> torch.Tensor:
        """Block k of K (chunk rows x landmarks): from the cache, or computed."""
        if k < len(cached):
            return cached[k]
        start, stop = starts[k]
        block = kernel(kernel.prepare(rows_of(X, slice(start, stop), device)), marks)
        if keep:
            cached.append(block)
        return block

    colsum = torch.zeros(m, dtype=torch.float64, device=device)
    for k in range(len(starts)):
        colsum += affinities(k).sum(0, dtype=torch.float64)
        _report(progress, "degrees", k, len(starts))
    a = A_inv @ colsum
    gram = torch.zeros(m, m, dtype=torch.float64, device=device)
    for k in range(len(starts)):
        scaled = _normalise_rows(affinities(k), a)
        if keep:
            cached[k] = scaled
        gram += (scaled.T @ scaled).double()
        _report(progress, "graph", k, len(starts))
    vals, vecs = torch.linalg.eigh(A_isqrt @ gram @ A_isqrt)
    vals, vecs = vals.flip(0)[:n_eig], vecs.flip(1)[:, :n_eig]
    if not bool((vals > 0).all()):
        raise ZooError(f"the landmark graph has only {int((vals > 0).sum())} usable eigenvectors "
                       f"for n_eig={n_eig}; lower n_eig, add landmarks or raise sigma")
    project = (A_isqrt @ vecs / vals.sqrt()).float()
    out = np.empty((n, n_eig), dtype=np.float32)
    for k, (start, stop) in enumerate(starts):
        scaled = cached[k] if keep else _normalise_rows(affinities(k), a)
        out[start:stop] = (scaled @ project).cpu().numpy()
        _report(progress, "eigenvectors", k, len(starts))
    return NcutResult(_fix_signs(out), vals.cpu().numpy(), kernel.sigma, landmarks, affinity)


def _normalise_rows(block: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """D^-1/2 K for a block of K, with the Nystrom degrees d = K a; a non-positive degree means
    the approximation broke down, which is an error rather than a clamp."""
    degree = block.double() @ a
    if not bool((degree > 0).all()):
        raise ZooError("Nystrom degrees are not all positive: the landmarks do not cover the "
                       "data at this sigma; add landmarks or raise sigma")
    return block * degree.rsqrt().float()[:, None]


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
