"""Normalized cut (top eigenvectors of D^-1/2 W D^-1/2) with a Nystrom extension, and exactly.

Nystrom (Fowlkes, Belongie, Chung, Malik 2004, one-shot form): with K (n, m) the affinities of
every node to m landmarks and A (m, m) those among the landmarks, the full graph is approximated
by W ~ K A^+ K^T (exact on the landmark rows). Stable form without any dense eigendecomposition
of A: a pivoted Cholesky factorisation P^T A P = L L^T (LAPACK dpstrf, blocked, m^3 / 3
multiply-adds, a small fraction of an eigh's work) stopped where the largest remaining pivot is
below what the working precision resolves (below) keeps r landmarks whose kernel rows span the
others' to that resolution. Where every landmark is already resolved in its own order (each
pivot of the unpivoted Cholesky above the cut-off, as on high-dimensional features), that
factor is used instead (blocked potrf: no pivot search, and nothing is dropped). With
R = L_r^-T (applied by triangular solves with L_r, never formed), Phi = K_r R (n, r) gives
W ~ Phi Phi^T (the Nystrom approximation on the kept landmarks). Degrees d = Phi (Phi^T 1),
Phi~ = D^-1/2 Phi, and the top eigenvectors of C = Phi~^T Phi~ = V L V^T give those of the
normalised graph, U = Phi~ V L^-1/2, eigenvalues L, found by Lanczos on C (r x r) when it is
wide, or without forming C (block Krylov, below). A rounding error in K reaches Phi scaled by
||R|| ~ (smallest kept pivot)^-1/2, whereas rounding in a Gram matrix of K sandwiched between R
factors is scaled by the condition number of A_r: so Phi is formed first, except where that
Gram matrix is float64 and the cut-off is float32's (below).

Precision. A is always factored in float64. A pivot (the squared distance of a landmark's kernel
row from the span of those already kept) is resolved in a working precision when it exceeds
s^1.5 eps max(diag A), s = max(m, min(n, DEFAULT_LANDMARKS)): above the rounding of A's entries
(||dA|| <= m eps max(diag A)) and of the factorisation. The cut-off does not grow with the
landmark count up to the default (the former m eps s_max grew like m^2, and kept 30 directions
at 256 landmarks but 20 at 2048), and it stops growing with n past the default landmark count
(the former n^1.5 eps exceeded every pivot in float32 from about 40,000 rows, which forced
float64, twice the work, from there on). With pivots, unlike eigenvalues, more landmarks can
keep a few fewer (30, 28, 28, 28 at 75-600 landmarks on a smooth manifold): the greedy pivot
order changes with the set. `precision="float32"` forms K in float32 (twice the float64
matrix-multiply rate, half the memory), accumulating degrees and C in float64.
`precision="float64"` does it all in float64: with every node a landmark the result is then the
exact cut to float64 rounding, and dropped landmarks (near-duplicates, smooth features) are
announced by a `DroppedDirectionsWarning`. `precision="auto"` (the default) decides from the
data: float32 when its cut-off keeps every landmark float64 resolves, or when the ones it drops
do not move the top-n_eig space of the landmark graph (principal-angle cosine >=
TRUNCATION_COSINE between the cuts of A and of its shorter factor); otherwise float64, with a
note in the result. Smooth, low-dimensional features (a 2-d manifold in 384-d, as trained
features often are) have a Gaussian kernel whose spectrum decays exponentially, so few landmarks
are resolved in float32, and where n_eig needs more, "auto" computes in float64.

Cost O(n m d + n r^2 + m^3 / 3): three chunked passes over the rows (column sums of K, then C,
then U), with K held when n x r fits in CACHE_BYTES, else recomputed per pass so memory stays
O(chunk x m + m^2) beyond the result. In float32, C = R^T G R is formed from G = K^T D^-1 K in
float64 (n r^2 / 2 float64 against n (r^2 + r^2 / 2) float32 multiply-adds for Phi and its
Gram); G's float64 rounding, amplified by at most cond(A_r), stays far below float32's rounding
in K, which reaches C the same way on both routes. Where K is held in float32 and C is wide
(r >= KRYLOV_MIN, as at the default 2048 landmarks on high-dimensional features), C is not
formed: its top eigenpairs come from block Krylov on the held K (`_krylov_top`: 2 n r b
float32 multiply-adds per step of b vectors, converged to the distance float32 K already puts
C from its float64 value), and the G pass runs only where Krylov would need more than
KRYLOV_SPAN of C's width (then the G pass is cheaper). On the benchmark mixtures (n = 20,000,
20 eigenvectors, a flat bulk below the 10 cluster eigenvalues) it converges at 576-640 vectors,
under a third of r: 0.6-0.7 s against 1.5 s for the G pass and C's eigsh.

Past CACHE_BYTES (n m itemsize larger), float32 fits the landmark graph on a seeded sample of the
rows whose K fits (column sums and C scaled by n / sample, so they estimate all rows'), and only
the final pass, the extension U, reaches the other rows (the sample's from its held K, which is
then freed before the others' is computed): an estimate with relative error about
sample^-1/2 (0.3% at 131,072 rows) where the exact route would recompute K three times and form
G in float64. The Krylov solve then stops once every residual is a quarter of the sampling
error of C v for its eigenvector (estimated from the sample, `_sampling_error`), not at float32's
floor, twenty times lower: 7 steps instead of 10-11 at n = 300,000 (9.6-9.9 s against 12.0-12.4
s), the same top-10 subspace (cosine 1.000000; the flat bulk's eigenvectors 11-20, which the
sample does not determine, differ: 0.79). At n = 300,000 the top-10 subspace stayed within a
cosine of 0.99996 (separated clusters) and 0.9985 (overlapping) of the all-rows fit;
eigenvectors inside a flat bulk of eigenvalues (spacing below the estimate's error) are not
reproduced. The result's note says so; precision="float64" always reads every row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
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
PRECISIONS = ("auto", "float32", "float64")
TRUNCATION_COSINE = 0.9999  # "auto" keeps float32 when its cut-off moves the landmark cut less
EIGSH_MIN = 512  # C wider than this: top eigenpairs by Lanczos instead of a full eigh
# Kept directions from which float32 with K held uses block Krylov, not G: the flat bulk of the
# benchmark mixtures' spectra needs 640-700 Krylov vectors at 1024 and at 2048 directions, which
# at 1024 is past KRYLOV_SPAN (the G pass then runs after the failed attempt: 1.9x its time).
KRYLOV_MIN = 1536
KRYLOV_BLOCK = 64  # vectors per Krylov step (at least 2 n_eig)
KRYLOV_SPAN = 0.4  # Krylov basis width, as a share of C's, past which the G pass is cheaper
# Rows of K per product pair. K^T u is formed as (u^T K)^T and slices are long: skinny products
# (b = 64 columns) ran at 245 against 175 GFLOP/s with 512-row slices and K^T u (r = 2048, 2
# cores); the float32 sums inside a slice are blocked by the BLAS kernel either way (the
# applied C moved by 1.6e-7 of its norm, against the 5.4e-6 tolerance).
KRYLOV_ROWS = 4096
# A sampled fit's Krylov residuals need only reach this share of the sampling error of C v
# (then the two add to at most 1.25 times that error), estimated on ERROR_ROWS sampled rows.
SAMPLED_TOLERANCE = 0.25
ERROR_ROWS = 2048


class DroppedDirectionsWarning(UserWarning):
    """Landmark-kernel directions below float64 resolution were left out of the float64 cut."""


@dataclass(frozen=True)
class NcutResult:
    """Top eigenvectors (n, n_eig) of the normalised affinity, largest eigenvalue first.

    `sigma` is the bandwidth used (reuse it to cut related sets on the same scale),
    `landmarks` the node indices the Nystrom extension was built on (empty for `exact_ncut`)
    and `directions` the landmark-kernel directions it kept (see the module doc; n for
    `exact_ncut`), `precision` the one it ran in and `note` why, where "auto" chose float64.
    Each eigenvector's sign is fixed so that its largest-magnitude entry is positive.
    """

    eigvecs: np.ndarray
    eigvals: np.ndarray
    sigma: float
    landmarks: np.ndarray
    affinity: str
    directions: int
    precision: str = "float64"
    note: str = ""


def _check_args(X: Any, n_eig: int, affinity: str, sigma: float | None) -> Any:
    """X as a validated matrix; user errors for the other arguments."""
    X = as_matrix(X)
    check_affinity(affinity)
    if not 1 <= n_eig <= X.shape[0]:
        raise ZooError(f"n_eig={n_eig} must be between 1 and the number of rows ({X.shape[0]})")
    if sigma is not None and not sigma > 0:
        raise ZooError(f"sigma must be > 0, got {sigma}")
    return X


def check_precision(precision: str) -> None:
    """Reject an unknown working precision with the list of known ones."""
    if precision not in PRECISIONS:
        raise ZooError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _kernel(X: Any, affinity: str, sigma: float | None, seed: int,
            device: str | torch.device, chunk: int) -> Kernel:
    if sigma is None:
        sigma = estimate_sigma(X, affinity, seed, device)
    center = row_mean(X, device, chunk) if affinity == "rbf" else None
    return Kernel(affinity, float(sigma), center)


def _fix_signs(vecs: np.ndarray) -> np.ndarray:
    """Flip columns in place so each one's largest-magnitude entry (the first, on ties) is
    positive (a deterministic sign); returns `vecs`. From column maxima and minima: no (n, k)
    temporary, whose fresh pages took 0.5 s at a million rows."""
    top, bottom = vecs.max(0), vecs.min(0)
    flip = -bottom > top
    for column in np.flatnonzero(-bottom == top):  # a tie: the first extreme in row order
        flip[column] = vecs[:, column].argmin() < vecs[:, column].argmax()
    vecs *= np.where(flip, -1.0, 1.0).astype(vecs.dtype)
    return vecs


def _cutoff(precision: str, n: int, m: int, A: torch.Tensor) -> float:
    """Pivots at or below this are not resolved in `precision`: s^1.5 eps times the largest
    self-affinity, s = max(m, min(n, DEFAULT_LANDMARKS)) (module doc): it does not grow with
    the landmark count up to the default, nor with the node count past it."""
    s = max(m, min(n, DEFAULT_LANDMARKS))
    return float(s) ** 1.5 * float(np.finfo(precision).eps) * float(A.diagonal().max())


@dataclass(frozen=True)
class LandmarkBasis:
    """The kept landmarks (positions among the FPS landmarks, pivot order) and the Cholesky
    factor L (r, r, float64, lower triangular) of A[kept, kept] = L L^T; R = L^-T, with
    Phi = K[:, kept] R, is applied by triangular solves and never formed (forming it took 0.08
    s at r = 2048, and each solve runs in half the time of a product with R)."""

    kept: np.ndarray
    lower: torch.Tensor
    precision: str
    note: str

    @property
    def width(self) -> int:
        """r, the number of kept landmark directions."""
        return len(self.lower)

    def times(self, x: torch.Tensor) -> torch.Tensor:
        """R x (x of shape (r,) or (r, k), float64)."""
        return _solve(self.lower.T, x, upper=True)

    def transposed_times(self, x: torch.Tensor) -> torch.Tensor:
        """R^T x (x of shape (r,) or (r, k), float64)."""
        return _solve(self.lower, x, upper=False)

    def rows_times(self, rows: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """rows R for float64 rows (k, r), e.g. rows of K: Phi's rows; written into `out`."""
        import torch

        return torch.linalg.solve_triangular(self.lower.T, rows, upper=True, left=False,
                                             out=out)


def _solve(triangle: torch.Tensor, x: torch.Tensor, upper: bool) -> torch.Tensor:
    """triangle^-1 x for a vector or a matrix x."""
    import torch

    column = x[:, None] if x.dim() == 1 else x
    solved = torch.linalg.solve_triangular(triangle, column, upper=upper)
    return solved[:, 0] if x.dim() == 1 else solved


def _landmark_basis(A: torch.Tensor, n: int, n_eig: int, sigma: float,
                    precision: str) -> LandmarkBasis:
    """Cholesky of A (float64): in the landmarks' order where every pivot is resolved in the
    working precision (float32 for "auto"), else pivoted (LAPACK dpstrf) and stopped at the
    working precision's cut-off; "auto" resolved to float32 where its shorter factor keeps the
    landmark cut."""
    import torch
    from scipy.linalg import lapack

    m = len(A)
    cutoff = {p: _cutoff(p, n, m, A) for p in PRECISIONS[1:]}
    working = "float64" if precision == "float64" else "float32"  # "auto" tries float32 first
    resolved = _resolved_in_order(A, cutoff[working])
    if resolved is not None:
        return LandmarkBasis(np.arange(m), _checked(resolved).to(A.device), working, "")
    # A is a temporary of the caller's: factored in place (no second m x m copy)
    factor, piv, rank, info = lapack.dpstrf(A.double().cpu().numpy(), tol=cutoff["float64"],
                                            lower=1, overwrite_a=1)
    if info < 0:
        raise ZooError(f"the landmark kernel could not be factored (LAPACK dpstrf info={info})")
    pivots = np.diag(factor)[:rank] ** 2  # non-increasing: each is the largest left
    counts = {"float64": int(rank), "float32": int((pivots > cutoff["float32"]).sum())}
    order = piv - 1
    note = ""
    if precision == "auto":
        precision = "float32"
        if counts["float32"] < counts["float64"]:
            full = np.zeros((m, rank))
            full[order] = np.tril(factor[:, :rank])  # A = full full^T to float64 resolution
            cosine = _truncated_cosine(full, counts["float32"], n_eig)
            if not cosine >= TRUNCATION_COSINE:
                precision = "float64"
                note = (f"float32 resolves {counts['float32']} of the {counts['float64']} "
                        f"landmark directions float64 does at sigma={sigma:.4g}, and the cut "
                        f"needs the rest (top-{n_eig} landmark-graph cosine {cosine:.4f}); "
                        "computed in float64")
    dropped = m - counts["float64"]
    if dropped and precision == "float64" and not note:
        warnings.warn(
            f"{dropped} of {m} Nystrom landmark directions are below float64 resolution "
            f"(pivots <= {cutoff['float64']:.1e}: the others span them) and were dropped: "
            f"those landmarks (near-)duplicate others or the features vary smoothly at "
            f"sigma={sigma:.4g}, so they add nothing to the cut. Use fewer "
            f"landmarks (about {counts['float64']}) for the same result faster, or a smaller "
            "sigma to resolve finer structure.", DroppedDirectionsWarning, stacklevel=3)
    r = counts[precision]
    lower = _checked(torch.from_numpy(np.tril(factor[:r, :r])))
    return LandmarkBasis(order[:r], lower.to(A.device), precision, note)


def _resolved_in_order(A: torch.Tensor, cutoff: float) -> torch.Tensor | None:
    """The Cholesky factor L (float64, CPU) of A in the landmarks' own order where every pivot
    exceeds `cutoff` (each landmark resolved beyond the cut-off from those before it, so
    all are kept and no pivoting is needed), else None. Blocked potrf runs several times
    faster than the pivoted dpstrf, which is then only needed where landmarks are dropped."""
    import torch

    factor, info = torch.linalg.cholesky_ex(A.double().cpu())
    if int(info) != 0 or not bool((factor.diagonal() ** 2 > cutoff).all()):
        return None
    return factor


def _checked(lower: torch.Tensor) -> torch.Tensor:
    """`lower`, the float64 Cholesky factor, after checking that solves with it stay finite
    (R^T 1 and R 1: a factor whose solves overflow is numerically singular)."""
    import torch

    ones = torch.ones(len(lower), dtype=lower.dtype)
    probes = (_solve(lower, ones, upper=False), _solve(lower.T, ones, upper=True))
    if not all(bool(torch.isfinite(p).all()) for p in probes):
        raise ZooError("the landmark kernel factor is singular; raise sigma or use fewer "
                       "landmarks")
    return lower


def _truncated_cosine(full: np.ndarray, short: int, k: int) -> float:
    """Smallest principal-angle cosine between the top-k normalized-cut spaces of the landmark
    graph F F^T (`full`, the float64 factor) and of its first `short` columns; 0 if one is
    degenerate."""
    if short < k:
        return 0.0
    head = full[:, :short]
    whole = _landmark_cut(lambda x: full @ (full.T @ x), len(full), k)
    truncated = _landmark_cut(lambda x: head @ (head.T @ x), len(full), k)
    if whole is None or truncated is None:
        return 0.0
    return float(subspace_cosines(whole, truncated).min())


def _landmark_cut(apply: Callable[[np.ndarray], np.ndarray], m: int,
                  k: int) -> np.ndarray | None:
    """Top-k eigenvectors (m, k) of D^-1/2 W D^-1/2 with D = diag(W 1), W given by x -> W x,
    by Lanczos on the m x m operator (a dense eigh when small); None where a degree is not
    positive."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    degrees = apply(np.ones(m))
    if not bool((degrees > 0).all()):
        return None
    scale = 1.0 / np.sqrt(degrees)
    if m <= max(EIGSH_MIN, 2 * k + 1):
        _, vecs = np.linalg.eigh(scale[:, None] * apply(np.eye(m)) * scale[None, :])
        return vecs[:, ::-1][:, :k]
    op = LinearOperator((m, m), matvec=lambda x: scale * apply(scale * x.ravel()),
                        dtype=np.float64)
    return eigsh(op, k=k, which="LA", tol=1e-10, v0=np.sqrt(degrees))[1]


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
         device: str = "cpu", chunk_rows: int | None = None, precision: str = "auto",
         progress: Progress | None = None) -> NcutResult:
    """Normalized-cut eigenvectors of the rows of X (numpy, memmap or tensor) by Nystrom.

    Landmarks by farthest-point sampling (capped at n); `sigma=None` takes the median-distance
    bandwidth over seeded pairs. `precision` is "auto" (default: float32 where it resolves the
    cut, else float64 with `note` saying so), "float32" or "float64"; see the module doc. In
    float64 with n_landmarks >= n the result is the exact normalized cut.
    """
    import torch

    X = _check_args(X, n_eig, affinity, sigma)
    check_precision(precision)
    n = X.shape[0]
    m = min(n_landmarks, n)
    if m < n_eig:
        raise ZooError(f"n_landmarks={n_landmarks} is below n_eig={n_eig}; the landmark graph "
                       "has at most n_landmarks eigenvectors")
    chunk = chunk_rows or max(256, CHUNK_BYTES // (4 * m))
    kernel = _kernel(X, affinity, sigma, seed, device, chunk)
    landmarks = np.sort(farthest_point_sampling(X, m, kernel.prepare, seed, device, chunk,
                                                progress))
    marks = kernel.prepare(rows_of(X, landmarks, device, torch.float64))
    basis = _landmark_basis(kernel(marks, marks), n, n_eig, kernel.sigma, precision)
    precision, note = basis.precision, basis.note
    _report(progress, "basis", 0, 1)
    if basis.width < n_eig:
        raise ZooError(_too_few(basis.width, n_eig, kernel.sigma, precision))
    marks, m = marks[basis.kept], len(basis.kept)  # the pivots span the rest (module doc)
    dtype = getattr(torch, precision)
    itemsize = torch.empty((), dtype=dtype).element_size()
    chunk = chunk_rows or max(256, CHUNK_BYTES // (itemsize * m))
    marks = marks.to(dtype)
    source = source_dtype(X, dtype)
    # The landmark graph (column sums of K, then C) is fitted on every row where K for all of
    # them fits in CACHE_BYTES or precision is float64 (exact); otherwise, in float32, on a
    # seeded sample of the rows whose K does fit, and only the extension reaches the others.
    fitted = n if n * m * itemsize <= CACHE_BYTES or precision == "float64" else \
        CACHE_BYTES // (m * itemsize)
    sample = None if fitted == n else np.sort(np.random.default_rng(seed).choice(n, fitted,
                                                                                   replace=False))
    if sample is not None:
        note = (f"landmark graph fitted on {fitted:,} of {n:,} rows, drawn with seed {seed} "
                f"(their affinities fit in {CACHE_BYTES >> 20} MiB); eigenvectors extended to "
                "every row")
    hold = fitted * m * itemsize <= CACHE_BYTES
    fit = list(chunks(fitted, chunk))
    held: list[torch.Tensor] = []
    # K is computed into buffers allocated once: held, into one (fitted, m) store; else every
    # block into one buffer (valid until the next block). Per-block allocations left glibc's
    # heap holding freed temporaries: 300 MB more at 1M rows.
    work = None if hold and sample is None else torch.empty(chunk, m, dtype=dtype, device=device)
    store = torch.empty(fitted, m, dtype=dtype, device=device) if hold else None

    def rows_block(index: slice | np.ndarray, out: torch.Tensor | None) -> torch.Tensor:
        """K for the rows `index` (working dtype), written into `out` when given."""
        rows = kernel.prepare(rows_of(X, index, device, source))
        return kernel(rows.to(dtype), marks, out)

    def fit_block(k: int) -> torch.Tensor:
        """Block k of K on the fitted rows: held, or computed into the shared buffer."""
        if k < len(held):
            return held[k]
        a, b = fit[k]
        block = rows_block(slice(a, b) if sample is None else sample[a:b],
                           store[a:b] if hold else work[:b - a])
        if hold:
            held.append(block)
        return block

    scale = n / fitted  # a sample's sums stand for all rows'
    colsum = torch.zeros(m, dtype=torch.float64, device=device)
    for k in range(len(fit)):
        colsum += fit_block(k).sum(0).double()  # <= chunk terms per sum in the work dtype
        _report(progress, "degrees", k, len(fit))
    total = basis.transposed_times(scale * colsum)  # Phi^T 1
    # C from Phi, or from G = K^T D^-1 K in float64 where that is cheaper (module doc).
    via_k = precision == "float32"
    weights = (basis.times(total) if via_k else total).to(dtype)  # degrees = K A_r^+ K^T 1
    degrees = torch.empty(fitted, dtype=torch.float64, device=device)
    top = None
    if via_k and hold and basis.width >= KRYLOV_MIN:
        degrees[:] = _degrees(store, weights)  # the degrees pass has filled the store
        top = _krylov_top(store, degrees / scale, basis, total, n_eig, seed, progress,
                          None if sample is None else n)
    if top is None:
        top = _top_eigen(scale * _graph(fit_block, fit, basis, weights, degrees, via_k,
                                        progress), n_eig)
    vals, vecs = top
    if not bool((vals > 0).all()):
        raise ZooError(f"the landmark graph has only {int((vals > 0).sum())} usable eigenvectors "
                       f"for n_eig={n_eig}; lower n_eig, add landmarks or raise sigma")
    project = (basis.times(vecs) / vals.sqrt()).to(dtype)
    out = np.empty((n, n_eig), dtype=np.float32)
    # The fitted rows from their K (held, or recomputed) and degrees; after a sampled fit, the
    # sample's K is then freed and the other rows' is computed.
    rest = np.empty(0, dtype=np.int64) if sample is None else np.delete(np.arange(n), sample)
    others = list(chunks(len(rest), chunk))
    steps = len(fit) + len(others)
    for k, (a, b) in enumerate(fit):
        rows = slice(a, b) if sample is None else sample[a:b]
        out[rows] = _extend(fit_block(k), degrees[a:b], project)
        _report(progress, "eigenvectors", k, steps)
    if sample is not None:
        held.clear()
        store = None
        for k, (a, b) in enumerate(others, start=len(fit)):
            block = rows_block(rest[a:b], work[:b - a])
            out[rest[a:b]] = _extend(block, _degrees(block, weights), project)
            _report(progress, "eigenvectors", k, steps)
    return NcutResult(_fix_signs(out), vals.cpu().numpy(), kernel.sigma, landmarks, affinity,
                      basis.width, precision, note)


def _extend(block: torch.Tensor, degrees: torch.Tensor, project: torch.Tensor) -> np.ndarray:
    """The eigenvectors on a block of rows, D^-1/2 K R V L^-1/2, from their K and degrees."""
    return ((block @ project).double() * degrees.rsqrt()[:, None]).cpu().numpy()


def _graph(affinities: Callable[[int], torch.Tensor], starts: list[tuple[int, int]],
           basis: LandmarkBasis, weights: torch.Tensor, degrees: torch.Tensor, via_k: bool,
           progress: Progress | None) -> torch.Tensor:
    """C (r x r, float64) in one pass over the blocks of K, filling `degrees`: Phi~^T Phi~, or
    R^T G R with G = K^T D^-1 K summed in float64 when `via_k` (module doc)."""
    import torch

    chunk, dtype, device = starts[0][1] - starts[0][0], weights.dtype, weights.device
    gram = torch.zeros(len(weights), len(weights), dtype=torch.float64, device=device)
    scaled = torch.empty(chunk, len(weights), dtype=torch.float64 if via_k else dtype,
                         device=device)  # reused buffers: fresh pages cost more than products
    phi = None if via_k else torch.empty(chunk, basis.width, dtype=dtype, device=device)
    for k, (start, stop) in enumerate(starts):
        rows = (affinities(k) if via_k
                else basis.rows_times(affinities(k), out=phi[:stop - start]))
        degrees[start:stop] = _degrees(rows, weights)
        scale = degrees[start:stop].rsqrt()[:, None].to(scaled.dtype)
        gram += _gram(torch.mul(rows, scale, out=scaled[:stop - start]))
        _report(progress, "graph", k, len(starts))
    # R^T G R as R^T (R^T G)^T, G symmetric
    return basis.transposed_times(basis.transposed_times(gram).T) if via_k else gram


def _krylov_top(held: torch.Tensor, degrees: torch.Tensor, basis: LandmarkBasis,
                start: torch.Tensor, k: int, seed: int, progress: Progress | None,
                population: int | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The k largest eigenpairs of C = R^T K^T D^-1 K R by block Krylov from the held K
    (float32), without forming C; None where the residuals do not reach the tolerance
    before the basis holds KRYLOV_SPAN of C's width (the G pass is then cheaper).

    Each step applies C to a block of KRYLOV_BLOCK orthonormal vectors (two float32 products
    per slice of K's rows, 2 n r b multiply-adds, against n r^2 / 2 in float64 for G) and takes the
    Ritz pairs of everything applied so far (Rayleigh-Ritz on the symmetric part of the
    projected matrix, fully reorthogonalised). It stops when every residual ||C v - t v|| is
    at most t_1 times the larger of sqrt(r) eps32 and twice the norm of the projected matrix's
    antisymmetric part. The pairs are then exact for a matrix that close to C: the first is the
    distance float32 K already puts between C and its float64 value (measured 1.2e-6, 0.45
    sqrt(r) eps32, on the benchmark mixtures); the second measures the float32 applications'
    own rounding (C is symmetric, its applied form is not), below which no residual can fall,
    larger where A_r is worse conditioned (5e-6 at r = 1024 on 64-d clusters). Where the
    held rows are a uniform sample of `population` rows, C is itself an estimate: each residual
    need then only reach SAMPLED_TOLERANCE times the standard error of C v (`_sampling_error`).
    """
    import torch

    r, dtype, device = basis.width, held.dtype, basis.lower.device
    width = max(2 * k, KRYLOV_BLOCK)
    tol = float(np.sqrt(r) * np.finfo(np.float32).eps)
    inverse = (1.0 / degrees).to(dtype)[:, None]

    def apply(q: torch.Tensor) -> torch.Tensor:
        y = basis.times(q).to(dtype)
        out = torch.zeros(q.shape[1], r, dtype=torch.float64, device=q.device)  # (K^T D^-1 K R q)^T
        for s in range(0, len(held), KRYLOV_ROWS):
            part = held[s:s + KRYLOV_ROWS]
            out += ((part @ y).mul_(inverse[s:s + KRYLOV_ROWS]).T @ part).double()
        return basis.transposed_times(out.T)

    error = None if population is None else _sampling_error(held, degrees, basis, population,
                                                            seed)
    probe = torch.randn(r, width, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(seed)).to(device)
    probe[:, 0] = start  # Phi^T 1 is C's top eigenvector (eigenvalue 1)
    steps = int(KRYLOV_SPAN * r) // width
    if steps < 1:
        return None
    # the basis Q, C Q and the projection Q^T C Q, grown one block per step
    q_all, z_all = (torch.empty(r, steps * width, dtype=torch.float64, device=device)
                    for _ in range(2))
    projection = torch.zeros(steps * width, steps * width, dtype=torch.float64,
                             device=device)
    q_all[:, :width] = torch.linalg.qr(probe).Q
    for step in range(steps):
        j0, j1 = step * width, (step + 1) * width
        q, z = q_all[:, :j1], z_all[:, :j1]
        z[:, j0:] = apply(q[:, j0:])
        projection[:j1, j0:j1] = q.T @ z[:, j0:]  # the new block's column and row
        projection[j0:j1, :j0] = q[:, j0:].T @ z[:, :j0]
        sym, skew = _split_symmetric(projection[:j1, :j1])
        ritz, coef = torch.linalg.eigh(sym)
        ritz, coef = ritz.flip(0)[:k], coef.flip(1)[:, :k]
        vecs = q @ coef
        _report(progress, "graph", step, steps)
        limit = max(tol, 2 * _spectral_norm(skew)) * ritz[0]
        if error is not None:
            limit = torch.clamp(SAMPLED_TOLERANCE * error(vecs, ritz), min=float(limit))
        if bool(((z @ coef - vecs * ritz).norm(dim=0) <= limit).all()):
            return ritz, vecs
        if step + 1 < steps:
            grown = z[:, j0:] - q @ projection[:j1, j0:j1]  # then once more, for rounding
            q_all[:, j1:j1 + width] = torch.linalg.qr(grown - q @ (q.T @ grown)).Q
    return None


def _sampling_error(held: torch.Tensor, degrees: torch.Tensor, basis: LandmarkBasis,
                    population: int, seed: int) -> Callable[[torch.Tensor, torch.Tensor],
                                                            torch.Tensor]:
    """A function of eigenpairs (v (r, k), t (k,)) giving the standard error (k,) of C v, for C
    summed over the held rows, a uniform sample without replacement of s of `population` rows:
    sqrt((1 - s / N) (sum_i ||x_i||^2 - ||C v||^2 / s)), x_i = phi_i (phi_i . v) the rows'
    terms (phi_i = R^T k_i / sqrt(degree_i)), ||C v|| = t, and the sum estimated from a seeded
    subsample of ERROR_ROWS held rows (float64: R^T k_i may cancel)."""
    import torch

    rows = len(held)
    pick = np.sort(np.random.default_rng(seed).choice(rows, min(rows, ERROR_ROWS), replace=False))
    index = torch.from_numpy(pick).to(degrees.device)
    phi = basis.rows_times(held[index].double()) / degrees[index].sqrt()[:, None]
    norms = (phi * phi).sum(1, keepdim=True)
    share = rows / len(pick)

    def error(vecs: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        spread = share * (norms * (phi @ vecs) ** 2).sum(0) - vals ** 2 / rows
        return ((1 - rows / population) * spread).clamp(min=0).sqrt()

    return error


def _split_symmetric(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The symmetric and antisymmetric parts of a square matrix."""
    return (m + m.T) / 2, (m - m.T) / 2


def _spectral_norm(m: torch.Tensor, iterations: int = 20) -> float:
    """||m||_2 estimated by power iteration on m^T m from a fixed start (a lower bound that
    tightens with each iteration; exact where the top singular value stands apart)."""
    import torch

    x = torch.ones(m.shape[1], dtype=m.dtype, device=m.device)
    norm = 0.0
    for _ in range(iterations):
        y = m @ x
        x = m.T @ y
        length = float(torch.linalg.vector_norm(x))
        if length == 0.0:
            return 0.0
        norm, x = length / float(torch.linalg.vector_norm(y)), x / length
    return norm


def _too_few(directions: int, n_eig: int, sigma: float, precision: str) -> str:
    """The message for a landmark graph that resolves fewer directions than eigenvectors asked."""
    way = ("use precision='auto' or 'float64' (`zoo cut --precision`), " if precision == "float32"
           else "")
    return (f"the landmark graph resolves only {directions} directions in {precision} at "
            f"sigma={sigma:.4g}, fewer than n_eig={n_eig}: {way}lower n_eig to at most "
            f"{directions} (--n-eig), or pass a smaller sigma (--sigma) to resolve finer "
            "structure")


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
