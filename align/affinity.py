"""Gaussian affinities between feature rows, computed chunk by chunk on CPU or CUDA.

`rbf`: W_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)). `cosine`: the same kernel on L2-normalised
rows, i.e. W_ij = exp(-(1 - cos_ij) / sigma^2), so both stay positive definite (which the
Nystrom extension relies on). Rows are centred first for `rbf` (distances do not change, float32
cancellation does).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UnknownNameError, ZooError

if TYPE_CHECKING:
    import torch

AFFINITIES = ("rbf", "cosine")
SIGMA_ROWS, SIGMA_PAIRS = 4096, 20_000  # median distance over random pairs of a row sample


def check_affinity(affinity: str) -> None:
    """Reject an unknown affinity name with the list of known ones."""
    if affinity not in AFFINITIES:
        raise UnknownNameError("affinity", affinity, AFFINITIES)


def as_matrix(X: Any) -> Any:
    """Validate a (rows, dims) numpy array or torch tensor (memmaps stay on disk)."""
    if not hasattr(X, "shape") or len(X.shape) != 2:
        raise ZooError(f"features must be a 2-D (rows, dims) array, got shape "
                       f"{getattr(X, 'shape', None)}")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise ZooError(f"need at least 2 rows and 1 dim to build a graph, got {tuple(X.shape)}")
    return X


def rows_of(X: Any, index: slice | np.ndarray, device: str | torch.device,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rows of a numpy array / memmap / tensor (a slice or sorted indices) as a float tensor on
    `device`; only these rows are read, so X may be larger than memory."""
    import torch

    if isinstance(X, torch.Tensor):
        block = X[index if isinstance(index, slice) else torch.as_tensor(index, device=X.device)]
    else:
        block = np.ascontiguousarray(X[index])
        block = torch.from_numpy(block if block.flags.writeable else block.copy())
    return block.to(device=device, dtype=dtype or torch.float32)


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) pairs covering range(n) in steps of `size`."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


@dataclass(frozen=True)
class Kernel:
    """The affinity of one graph: row preparation (centre or normalise) and the bandwidth."""

    affinity: str
    sigma: float
    center: torch.Tensor | None  # float64 mean of the rows, for `rbf`

    def prepare(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw feature rows -> the rows the Gaussian kernel is evaluated on."""
        return prepare_rows(rows, self.affinity, self.center)

    def __call__(self, a: torch.Tensor, b: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """Affinities between prepared rows `a` (p, d) and `b` (q, d): (p, q), dtype of a;
        written into `out` when given."""
        return gaussian(a, b, self.sigma, out)


def prepare_rows(rows: torch.Tensor, affinity: str, center: torch.Tensor | None) -> torch.Tensor:
    """Centre (`rbf`) or L2-normalise (`cosine`) rows, keeping their dtype."""
    import torch

    if affinity == "cosine":
        return torch.nn.functional.normalize(rows, dim=1)
    return rows - center.to(device=rows.device, dtype=rows.dtype)


def gaussian(a: torch.Tensor, b: torch.Tensor, sigma: float,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """exp(-||a_i - b_j||^2 / (2 sigma^2)) via the expanded square distance, clamped at 0;
    one (p, q) array, `out` when given."""
    import torch

    d2 = torch.addmm((a * a).sum(1, keepdim=True), a, b.T, alpha=-2.0, out=out)
    d2.add_((b * b).sum(1)[None, :])
    return d2.clamp_min_(0.0).mul_(-0.5 / (sigma * sigma)).exp_()


def source_dtype(X: Any, work: torch.dtype | None = None) -> torch.dtype:
    """The dtype to read X's rows in before they are centred: float64 for float64 X, else
    `work` (default float32). A float32 subtraction rounds once, so float32 rows lose nothing
    by being centred in float32; float64 rows are centred before any rounding."""
    import torch

    return torch.float64 if str(X.dtype).endswith("float64") else (work or torch.float32)


def row_mean(X: Any, device: str | torch.device, chunk: int) -> torch.Tensor:
    """The mean row of X (float64), summed per chunk in the rows' dtype and over chunks in
    float64. It is the centre of `rbf` rows, which only has to be near the mean: shifting every
    row by the same vector leaves all distances unchanged."""
    import torch

    total = torch.zeros(X.shape[1], dtype=torch.float64, device=device)
    for start, stop in chunks(X.shape[0], chunk):
        total += rows_of(X, slice(start, stop), device, source_dtype(X)).sum(0).double()
    return total / X.shape[0]


def estimate_sigma(X: Any, affinity: str = "rbf", seed: int = 0,
                   device: str | torch.device = "cpu") -> float:
    """Median-distance bandwidth over seeded random pairs: sigma = sqrt(median ||x_i - x_j||^2).

    Rows are prepared as the kernel sees them (normalised for `cosine`), so one feature set
    always gets one sigma; pass sigma to `ncut` to reuse it on another run.
    """
    import torch

    check_affinity(affinity)
    X = as_matrix(X)
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(n, min(n, SIGMA_ROWS), replace=False))
    rows = rows_of(X, index, device)
    rows = prepare_rows(rows, affinity, rows.double().mean(0))
    i = torch.as_tensor(rng.integers(0, len(index), SIGMA_PAIRS), device=device)
    j = (i + torch.as_tensor(rng.integers(1, len(index), SIGMA_PAIRS), device=device)) % len(index)
    diffs = ((rows[i[s:e]] - rows[j[s:e]]).double() for s, e in chunks(SIGMA_PAIRS, 4096))
    d2 = torch.cat([(diff * diff).sum(1) for diff in diffs])  # distinct rows
    median = float(d2.median())
    if not median > 0:
        raise ZooError("the features are (almost) all identical: the median pairwise distance "
                       "is 0, so no bandwidth fits; pass sigma explicitly or check the features")
    return float(np.sqrt(median))
