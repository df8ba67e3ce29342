"""Normalized cut (top eigenvectors of D^-1/2 W D^-1/2) with a Nystrom extension, and exactly.

Nystrom (Fowlkes, Belongie, Chung, Malik 2004, one-shot form): with K (n, m) the affinities of
every node to m landmarks and A (m, m) those among the landmarks, the full graph is approximated
by W ~ K A^+ K^T (exact on the landmark rows). Stable form: with A = Q S Q^T (decomposed in the
working precision), keep the directions that precision resolves (s > m eps s_max),
R = Q_r S_r^-1/2 and Phi = K R (n, r), so that W ~ Phi Phi^T. Degrees d = Phi (Phi^T 1),
Phi~ = D^-1/2 Phi, and the top eigenvectors of C = Phi~^T Phi~ = V L V^T give those of the
normalised graph, U = Phi~ V L^-1/2, eigenvalues L. A rounding error in K reaches Phi scaled by
||R|| <= (m eps s_max)^-1/2, whereas rounding in a Gram matrix of K sandwiched between A^-1/2
factors is scaled by the condition number of A: so Phi is formed first, except where that
Gram matrix is float64 and the cut-off is float32's (below).

Precision. `precision="float32"` (the default) forms K, Phi and the per-chunk Gram products in
float32 (twice the float64 matrix-multiply rate, half the memory), accumulates degrees and C
over chunks in float64, and keeps landmark directions down to m eps32 s_max; the relative error
this leaves in Phi is ~eps32 / sqrt(m eps32), about 1e-5.
Directions below that cut-off carry nothing float32 resolves, and dropping them also makes
Phi narrower (r < m) and the passes cheaper. `precision="float64"` does everything in float64
with the cut-off at m eps64 s_max: with every node a landmark the result is then the exact cut
to float64 rounding, and dropped directions (near-duplicate landmarks) are announced by a
`DroppedDirectionsWarning`.

Cost O(n m (d + r) + n r^2): three chunked passes over the rows (column sums of K, then C,
then U), with K held when n x m fits in CACHE_BYTES, else recomputed per pass so memory stays
O(chunk x m + m^2) beyond the result. In float32, when r is close to m, C = R^T G R is formed
from G = K^T D^-1 K in float64 instead (n m^2 / 2 float64 against n (m r + r^2 / 2) float32
multiply-adds); G's float64 rounding, amplified by at most cond(A_r) <= 1 / (m eps32), stays
~1e-12, while rounding in K reaches C the same way on both routes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.align.affinity import (
    Kernel,
    as_matrix,
    check_affinity,
    chunks,
    estimate_sigma,
    row_mean,
    rows_of,
    source_dtype,
)
from zoo.align.landmarks import farthest_point_sampling
from zoo.errors import ZooError
from zoo.progress import Progress

if TYPE_CHECKING:
    import torch

DEFAULT_LANDMARKS = 2048
CHUNK_BYTES = 1 << 25  # bytes of one (chunk, m) affinity block: 32 MiB
CACHE_BYTES = 1 << 30  # K (n, m) is held between passes when it fits in 1 GiB
PRECISIONS = ("float32", "float64")
EIGSH_MIN = 512  # C wider than this: top eigenpairs by Lanczos instead of a full eigh
K_ROUTE_MIN = 0.7  # float32 forms C through K^T D^-1 K when r > this x m (see ncut)


class DroppedDirectionsWarning(UserWarning):
    """Landmark-kernel directions below float64 resolution were left out of the float64 cut."""


@dataclass(frozen=True)
class NcutResult:
    """Top eigenvectors (n, n_eig) of the normalised affinity, largest eigenvalue first.

    `sigma` is the bandwidth used (reuse it to cut related sets on the same scale),
    `landmarks` the node indices the Nystrom extension was built on (empty for `exact_ncut`)
    and `directions` the landmark-kernel directions it kept (see the module doc; n for
    `exact_ncut`). Each eigenvector's sign is fixed so that its largest-magnitude entry is
    positive.
    """

    eigvecs: np.ndarray
    eigvals: np.ndarray
    sigma: float
    landmarks: np.ndarray
    affinity: str
    directions: int


def _check_args(X: Any, n_eig: int, affinity: str, sigma: float | None) -> Any:
    """X as a validated matrix; user errors for the other arguments."""
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


def _landmark_basis(A: torch.Tensor, sigma: float, precision: str) -> torch.Tensor:
    """R = Q_r S_r^-1/2 (m, r) from A = Q S Q^T, decomposed in the working precision, over the
    eigenvalues it resolves (s > m eps s_max); in float64, announces directions dropped there."""
    import torch

    vals, vecs = (t.double() for t in torch.linalg.eigh(A.to(getattr(torch, precision))))
    tol = len(A) * float(np.finfo(precision).eps)
    keep = vals > tol * vals.max()
    dropped = len(A) - int(keep.sum())
    if dropped and precision == "float64":
        warnings.warn(
            f"{dropped} of {len(A)} Nystrom landmark directions are below float64 resolution "
            f"(kernel eigenvalue < {tol:.1e} x the largest) and were dropped: those "
            f"landmarks (near-)duplicate others at sigma={sigma:.4g}, so they add nothing to "
            f"the cut. Use fewer landmarks (about {len(A) - dropped}) for the same result "
            "faster, or a smaller sigma to resolve finer structure.",
            DroppedDirectionsWarning, stacklevel=3)
    return vecs[:, keep] / vals[keep].sqrt()


def _top_eigen(C: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenpairs of the symmetric float64 matrix C, largest first: Lanczos
    (ARPACK, converged to machine precision) when C is wide, else a full eigh."""
    import torch

    if len(C) <= max(EIGSH_MIN, 2 * k + 1):
        vals, vecs = torch.linalg.eigh(C)
        return vals.flip(0)[:k], vecs.flip(1)[:, :k]
    from scipy.sparse.linalg import eigsh

    vals, vecs = eigsh(C.cpu().numpy(), k=k, which="LA", tol=0, v0=np.ones(len(C)))
    order = np.argsort(vals)[::-1].copy()
    return (torch.from_numpy(vals[order]).to(C.device),
            torch.from_numpy(np.ascontiguousarray(vecs[:, order])).to(C.device))


def _gram(x: torch.Tensor) -> torch.Tensor:
    """x^T x in float64, summed in x's dtype over its rows; on CPU through numpy, whose
    matmul uses the symmetric rank-k BLAS kernel."""
    import torch

    if x.device.type != "cpu":
        return (x.T @ x).double()
    rows = x.numpy()
    return torch.from_numpy(rows.T @ rows).double()


def ncut(X: Any, n_eig: int = 20, n_landmarks: int = DEFAULT_LANDMARKS,
         sigma: float | None = None, affinity: str = "rbf", seed: int = 0,
         device: str = "cpu", chunk_rows: int | None = None, precision: str = "float32",
         progress: Progress | None = None) -> NcutResult:
    """Normalized-cut eigenvectors of the rows of X (numpy, memmap or tensor) by Nystrom.

    Landmarks by farthest-point sampling (capped at n); `sigma=None` takes the median-distance
    bandwidth over seeded pairs. `precision` is "float32" (default, fast) or "float64"; see the
    module doc. In float64 with n_landmarks >= n the result is the exact normalized cut.
    """
    import torch

    X = _check_args(X, n_eig, affinity, sigma)
    if precision not in PRECISIONS:
        raise ZooError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = getattr(torch, precision)
    n = X.shape[0]
    m = min(n_landmarks, n)
    if m < n_eig:
        raise ZooError(f"n_landmarks={n_landmarks} is below n_eig={n_eig}; the landmark graph "
                       "has at most n_landmarks eigenvectors")
    itemsize = torch.empty((), dtype=dtype).element_size()
    chunk = chunk_rows or max(256, CHUNK_BYTES // (itemsize * m))
    kernel = _kernel(X, affinity, sigma, seed, device, chunk)
    landmarks = farthest_point_sampling(X, m, kernel.prepare, seed, device, chunk, progress)
    marks = kernel.prepare(rows_of(X, np.sort(landmarks), device, torch.float64))
    basis = _landmark_basis(kernel(marks, marks), kernel.sigma, precision)
    if basis.shape[1] < n_eig:
        raise ZooError(f"the landmark graph resolves only {basis.shape[1]} directions for "
                       f"n_eig={n_eig}; lower n_eig or use a smaller sigma")
    marks, basis_w = marks.to(dtype), basis.to(dtype)
    starts = list(chunks(n, chunk))
    source = source_dtype(X, dtype)
    keep = n * m * itemsize <= CACHE_BYTES
    cached: list[torch.Tensor] = []
    # Not held: every block is computed into one buffer (valid until the next block), so the
    # allocator is not left holding freed blocks (glibc keeps them in its heap).
    work = None if keep else torch.empty(chunk, m, dtype=dtype, device=device)

    def affinities(k: int) -> torch.Tensor:
        """Block k of K (chunk rows x landmarks, working dtype): from the cache, or computed."""
        if k < len(cached):
            return cached[k]
        start, stop = starts[k]
        rows = kernel.prepare(rows_of(X, slice(start, stop), device, source))
        block = kernel(rows.to(dtype), marks, None if keep else work[:stop - start])
        if keep:
            cached.append(block)
        return block

    colsum = torch.zeros(m, dtype=torch.float64, device=device)
    for k in range(len(starts)):
        colsum += affinities(k).sum(0).double()  # <= chunk terms per sum in the work dtype
        _report(progress, "degrees", k, len(starts))
    total = basis.T @ colsum  # Phi^T 1
    # C from Phi, or from G = K^T D^-1 K in float64 where that is cheaper (module doc).
    via_k = precision == "float32" and basis.shape[1] > K_ROUTE_MIN * m
    weights = (basis @ total if via_k else total).to(dtype)  # degrees = K A_r^+ K^T 1
    degrees = torch.empty(n, dtype=torch.float64, device=device)
    gram = torch.zeros(len(weights), len(weights), dtype=torch.float64, device=device)
    scaled = torch.empty(chunk, len(weights), dtype=torch.float64 if via_k else dtype,
                         device=device)  # reused buffers: fresh pages cost more than products
    phi = None if via_k else torch.empty(chunk, basis.shape[1], dtype=dtype, device=device)
    for k, (start, stop) in enumerate(starts):
        rows = (affinities(k) if via_k
                else torch.mm(affinities(k), basis_w, out=phi[:stop - start]))
        degrees[start:stop] = _degrees(rows, weights)
        scale = degrees[start:stop].rsqrt()[:, None].to(scaled.dtype)
        gram += _gram(torch.mul(rows, scale, out=scaled[:stop - start]))
        _report(progress, "graph", k, len(starts))
    if via_k:
        gram = basis.T @ gram @ basis
    vals, vecs = _top_eigen(gram, n_eig)
    if not bool((vals > 0).all()):
        raise ZooError(f"the landmark graph has only {int((vals > 0).sum())} usable eigenvectors "
                       f"for n_eig={n_eig}; lower n_eig, add landmarks or raise sigma")
    project = (basis @ vecs / vals.sqrt()).to(dtype)
    out = np.empty((n, n_eig), dtype=np.float32)
    for k, (start, stop) in enumerate(starts):
        vecs_k = (affinities(k) @ project).double() * degrees[start:stop].rsqrt()[:, None]
        out[start:stop] = vecs_k.cpu().numpy()
        _report(progress, "eigenvectors", k, len(starts))
    return NcutResult(_fix_signs(out), vals.cpu().numpy(), kernel.sigma, landmarks, affinity,
                      basis.shape[1])


def _degrees(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Nystrom degrees of a block of rows, in float64: Phi (Phi^T 1), or K (A_r^+ K^T 1); a
    non-positive degree means the approximation broke down: an error rather than a clamp."""
    degree = (rows @ weights).double()
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
                      np.empty(0, dtype=np.int64), affinity, n)


def subspace_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the column spaces of a and b (descending)."""
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    return np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)
