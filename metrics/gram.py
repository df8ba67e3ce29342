"""Inner products between many Gram matrices at once, in row blocks (torch, CPU or CUDA).

For CKA-type metrics every pair (i, j) needs <K_i, K_j>, the Frobenius inner product of two
n x n centred Gram matrices. The Gram route forms each Gram matrix once, one block of rows at a
time, and turns every block into all pairwise inner products with one batched product, so the
work is ~n^2 (sum of widths) for the Gram rows plus ~n^2 L^2 for the inner products, whatever the
number of pairs.

Precision and speed (DESIGN rules 6 and 9): factors are centred with float64 column means (no
offset reaches float32; a factor marked `centred` was centred so by the metric's prepare and is
used where it lies, without a copy), the Gram rows are formed in float32 (twice the float64
matrix-multiply rate, half the memory traffic), and each inner product is summed in float32 over
at most one Gram row (<= n terms) and accumulated over rows and tiles in float64. Only the upper
triangle of each symmetric Gram matrix is formed, which halves the Gram work: each block of rows
r0:r1 is one product against all columns right of it (counted twice), and its diagonal square is
formed in strips of STRIP_ROWS rows (rows a:b against columns a:r1, the strip's own square
counted once), so below the diagonal only ~n STRIP_ROWS / 2 entries are formed as well
(`gram_tiles`). 256-row strips rather than 128 halve the number of small products per block:
on a busy 2-core machine each small product waits for both threads (a 2000-sample, 48-layer
run took 16.2 s with 128-row strips and 6.8 s with 512 while another job held a core), while
quiet runs differ by under 5%. Each tile is formed once and used for every pair at once, so
nothing is recomputed; the block size follows a memory budget.

float32 is used from FLOAT32_MIN_SAMPLES samples up (`precision="auto"`): below that the Gram
work is small and float64 keeps results exact to ~1e-12; it is never used where float32 matrix
products have been set to a reduced precision (TF32/bf16, `torch.set_float32_matmul_precision`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np

from zoo.errors import ZooError

CHUNK_BYTES = 256 * 2**20  # default budget for one side's block of Gram rows (all layers)
MAX_BLOCK_ROWS = 512  # rows per block: taller products run closer to the square-mm rate
STRIP_ROWS = 256  # diagonal squares in strips: waste ~ STRIP_ROWS / n; fewer, larger products
FLOAT32_MIN_SAMPLES = 512  # precision="auto" forms Gram rows in float32 from this n up
HALF_ROOT = 0.5**0.5  # a diagonal square scaled by this on both sides counts once, not twice


@dataclass(frozen=True)
class Gram:
    """A Gram matrix given by a factor (K = Z Z^T, Z of shape (n, r)) or explicitly (n, n)."""

    factor: np.ndarray | None = None
    matrix: np.ndarray | None = None
    centred: bool = False  # the factor's columns are centred already (used as is, no copy)

    @property
    def n(self) -> int:
        return len(self.factor if self.factor is not None else self.matrix)


def torch_device(device: str) -> Any:
    """`device` as a torch.device, or a clear error when it does not exist here."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ZooError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {device!r} is not available on this machine; use --device cpu")
    return dev


def block_rows(n: int, layers: int, itemsize: int = 4, budget: int = CHUNK_BYTES) -> int:
    """Gram rows per block: what fits `budget` bytes for all `layers`, at most MAX_BLOCK_ROWS."""
    return max(1, min(n, MAX_BLOCK_ROWS, budget // (itemsize * n * max(1, layers))))


def gram_tiles(n: int, rows: int) -> list[list[tuple[int, int, int, int]]]:
    """The (r0, r1, c0, c1) tiles of Gram entries formed, per block of `rows` rows: strips of
    its diagonal square (rows a:b against columns a:r1), then the block against all columns
    right of it (one tall product; long rows also keep the inner products' sums long)."""
    strip = min(rows, STRIP_ROWS)
    blocks = []
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        tiles = [(a, min(r1, a + strip), a, r1) for a in range(r0, r1, strip)]
        blocks.append(tiles + ([(r0, r1, r1, n)] if r1 < n else []))
    return blocks


def gram_inner_products(grams_a: Sequence[Gram], grams_b: Sequence[Gram] | None = None, *,
                        unbiased: bool = False, device: str = "cpu",
                        chunk_size: int | None = None,
                        progress: Callable[[str, int, int], None] | None = None,
                        precision: str = "auto",
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSIC estimates for all pairs: (cross (La, Lb), self_a (La), self_b (Lb)), float64.

    Biased (unbiased=False): <K_i, L_j> / (n-1)^2 with K, L double-centred (factors are
    column-centred here in float64; explicit matrices must come centred). Unbiased: Song et al.
    (2012)'s estimator, computed as the inner product of U-centred Gram matrices / (n (n-3))
    (Szekely & Rizzo 2014). `grams_b=None` means A against itself. `chunk_size` is the number
    of Gram rows per block (default: `block_rows` for a 256 MiB budget per side). `precision`
    is the dtype Gram rows are formed in: "float32", "float64" or "auto" (see the module doc);
    accumulation is float64 either way.
    """
    import torch

    dev = torch_device(device)
    same = grams_b is None
    sides = [list(grams_a)] if same else [list(grams_a), list(grams_b)]
    n = sides[0][0].n
    dtype = _work_dtype(precision, n)
    if any(g.n != n for side in sides for g in side):
        raise ZooError("Gram matrices of different sizes: rows must be paired by sample id")
    if unbiased and n < 4:
        raise ZooError(f"the unbiased HSIC estimator needs at least 4 samples, got {n}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    blocks = gram_tiles(n, chunk_size or block_rows(n, max(len(s) for s in sides), itemsize))
    size = max((r1 - r0) * (c1 - c0) for tiles in blocks for r0, r1, c0, c1 in tiles)
    stackers = [_Stacker(side, dev, unbiased, dtype, size) for side in sides]
    cross = torch.zeros(len(sides[0]), len(sides[-1]), dtype=torch.float64, device=dev)
    selfs = [torch.zeros(len(side), dtype=torch.float64, device=dev) for side in sides]
    for step, tiles in enumerate(blocks):
        for r0, r1, c0, c1 in tiles:
            stacks = [s.tile(r0, r1, c0, c1) for s in stackers]  # (layers, r1-r0, c1-c0) each
            # Every tile counts twice, but one starting on the diagonal has its square counted
            # once: its square is scaled by sqrt(1/2) on each side (one pass over the square,
            # so the inner products run over the whole contiguous tile at once).
            if c0 == r0:
                for s in stacks:
                    s[:, :, :r1 - r0].mul_(HALF_ROOT)
            _accumulate(cross, selfs, stacks, 2.0, same)
        if progress:
            progress("gram", step + 1, len(blocks))
    if same:
        selfs = [torch.diagonal(cross)]
    scale = n * (n - 3) if unbiased else (n - 1) ** 2
    cross_np, *self_np = (t.cpu().numpy() / scale for t in (cross, *selfs))
    # Stack row k holds input order[k]: index with the inverse permutations.
    inv_a, inv_b = (np.argsort(s.order) for s in (stackers[0], stackers[-1]))
    return cross_np[np.ix_(inv_a, inv_b)], self_np[0][inv_a], self_np[-1][inv_b]


def _accumulate(cross: Any, selfs: list[Any], parts: list[Any], weight: float,
                same: bool) -> None:
    """Add `weight` times the parts' inner products to `cross` (and, for two sides, each
    side's own to `selfs`)."""
    import torch

    cross += weight * _row_inner(parts[0], parts[-1])
    if not same:
        for acc, part in zip(selfs, parts):
            norms = torch.linalg.vector_norm(part, dim=2).to(torch.float64)
            acc += weight * (norms * norms).sum(dim=1)


def forms_float32(n: int) -> bool:
    """Whether Gram rows of n samples are formed in float32 under precision="auto"."""
    import torch

    return _work_dtype("auto", n) == torch.float32


def _work_dtype(precision: str, n: int) -> Any:
    """The torch dtype Gram rows are formed in (see the module doc)."""
    import torch

    if precision not in ("auto", "float32", "float64"):
        raise ZooError(f"precision must be auto, float32 or float64, got {precision!r}")
    exact_fp32 = torch.get_float32_matmul_precision() == "highest"
    if precision == "float32" or (precision == "auto" and n >= FLOAT32_MIN_SAMPLES and exact_fp32):
        return torch.float32
    return torch.float64


def _row_inner(a: Any, b: Any) -> Any:
    """sum_t a[:, t, :] @ b[:, t, :]^T in float64, each row's product summed in the work dtype.

    One batched product over rows: a float32 sum runs over at most one Gram row, the sum over
    rows is float64, so rounding does not grow with the n^2 terms of a Frobenius product.
    """
    import torch

    return torch.bmm(a.permute(1, 0, 2), b.permute(1, 2, 0)).sum(dim=0, dtype=torch.float64)


class _Stacker:
    """One side's Gram matrices on the device, writing blocks of their rows into one buffer.

    Factors are grouped by width, explicit matrices last; `order[k]` is the input index of
    stack row k.
    """

    def __init__(self, grams: list[Gram], dev: Any, unbiased: bool, dtype: Any,
                 tile_size: int) -> None:
        import torch

        self.n = grams[0].n
        key = [(-1 if g.factor is None else g.factor.shape[1], k) for k, g in enumerate(grams)]
        self.order = [k for _, k in sorted(key)]
        self.groups: list[_Factors | _Matrices] = []
        for width, members in groupby(sorted(key), key=lambda wk: wk[0]):
            ids = [k for _, k in members]
            if width < 0:  # explicit matrices stay on the host; blocks are copied over
                self.groups.append(_Matrices([grams[k].matrix for k in ids], unbiased, dtype))
            else:
                self.groups.append(_Factors([grams[k] for k in ids], dev, unbiased, dtype))
        self.buffer = torch.empty(len(grams) * tile_size, dtype=dtype, device=dev)

    def tile(self, r0: int, r1: int, c0: int, c1: int) -> Any:
        """(layers, r1-r0, c1-c0): rows r0:r1, columns c0:c1 of every (U-)centred Gram matrix."""
        stack = self.buffer[: len(self.order) * (r1 - r0) * (c1 - c0)].view(
            len(self.order), r1 - r0, c1 - c0)
        start = 0
        for group in self.groups:
            group.rows(r0, r1, c0, c1, stack[start:start + group.size])
            start += group.size
        return stack


class _Factors:
    """Factors of one width in the work dtype, one Gram tile per factor from one product
    (rows r0:r1 times rows c0:c1, transposed). A factor already centred in the work dtype on
    the CPU is used where it lies (no copy); others are centred here in float64, written in
    the work dtype.

    Unbiased: the U-centred Gram K - u 1' - 1 u' + c 11' (diagonal zeroed) is the product of
    augmented factors [Z, -u, 1, c] and [Z, 1, -u, 1], so U-centring costs no extra pass.
    """

    def __init__(self, grams: list[Gram], dev: Any, unbiased: bool, dtype: Any) -> None:
        import torch

        self.size, self.unbiased = len(grams), unbiased
        self.left: list[Any] = []
        self.right: list[Any] = []
        for gram in grams:
            z = gram.factor
            n, width = z.shape
            if gram.centred and not unbiased and z.dtype == _numpy_dtype(dtype):
                self.left.append(torch.from_numpy(np.ascontiguousarray(z)).to(dev))
                self.right.append(self.left[-1])
                continue
            z64 = torch.as_tensor(np.asarray(z, dtype=np.float64)).to(dev)
            left = torch.empty(n, width + (3 if unbiased else 0), dtype=dtype, device=dev)
            # One fused pass: subtract the float64 column means, write in the work dtype.
            torch.sub(z64, z64.mean(dim=0), out=left[:, :width])
            right = left
            if unbiased:
                right = left.clone()
                diag = ((z64 - z64.mean(dim=0)) ** 2).sum(dim=1)
                # Row sums of the centred Gram are 0, so off-diagonal row sums are -diag.
                u = -diag / (n - 2)
                c = -diag.sum() / ((n - 1) * (n - 2))
                ones = torch.ones_like(u)
                left[:, width:] = torch.stack([-u, ones, c * ones], dim=1)
                right[:, width:] = torch.stack([ones, -u, ones], dim=1)
            self.left.append(left)
            self.right.append(right)

    def rows(self, r0: int, r1: int, c0: int, c1: int, out: Any) -> None:
        """Write rows r0:r1, columns c0:c1 of each (U-)centred Gram matrix into `out`."""
        import torch

        for k, (left, right) in enumerate(zip(self.left, self.right)):
            torch.mm(left[r0:r1], right[c0:c1].T, out=out[k])
        if self.unbiased:
            torch.diagonal(out, offset=r0 - c0, dim1=1, dim2=2).zero_()


def _numpy_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype of a torch float dtype."""
    import torch

    return np.dtype(np.float32 if dtype == torch.float32 else np.float64)


class _Matrices:
    """Explicit (n, n) Gram matrices on the host; blocks are (U-)centred in float64 and copied
    over in the work dtype."""

    def __init__(self, matrices: list[np.ndarray], unbiased: bool, dtype: Any) -> None:
        self.matrices, self.unbiased, self.dtype = matrices, unbiased, dtype
        self.size = len(matrices)
        if unbiased:
            k = np.stack(matrices).astype(np.float64)
            diag = np.diagonal(k, axis1=1, axis2=2)
            n = k.shape[1]
            off = k.sum(axis=2) - diag  # row sums with the diagonal removed
            self.u = off / (n - 2)
            self.c = off.sum(axis=1) / ((n - 1) * (n - 2))

    def rows(self, r0: int, r1: int, c0: int, c1: int, out: Any) -> None:
        """Write rows r0:r1, columns c0:c1 of each (U-)centred Gram matrix into `out`."""
        import torch

        on_diagonal = np.arange(max(r0, c0), min(r1, c1))
        for k, (view, matrix) in enumerate(zip(out, self.matrices)):
            block = np.array(matrix[r0:r1, c0:c1], dtype=np.float64)
            if self.unbiased:
                block -= self.u[k, r0:r1, None]
                block -= self.u[k, None, c0:c1]
                block += self.c[k]
                block[on_diagonal - r0, on_diagonal - c0] = 0.0
            view.copy_(torch.from_numpy(block))
