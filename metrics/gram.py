"""Inner products between many Gram matrices at once, chunked over rows (torch, CPU or CUDA).

For CKA-type metrics every pair (i, j) needs <K_i, K_j>, the Frobenius inner product of two
n x n centred Gram matrices. Instead of forming them pair by pair, each chunk of rows of every
Gram matrix is written into one stacked (layers, chunk * n) matrix and a single matrix product
accumulates all pairwise inner products; memory stays at layers x chunk x n. Only the upper
triangle is visited (off-diagonal blocks scaled by sqrt(2)), which halves the work, and layers
of equal width build their Gram rows in one batched product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np

from zoo.errors import ZooError

CHUNK_BYTES = 256 * 2**20  # default budget for one stacked chunk of Gram rows
MIN_CHUNK_ROWS = 256


@dataclass(frozen=True)
class Gram:
    """A Gram matrix given by a factor (K = Z Z^T, Z of shape (n, r)) or explicitly (n, n)."""

    factor: np.ndarray | None = None
    matrix: np.ndarray | None = None

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


def gram_inner_products(grams_a: Sequence[Gram], grams_b: Sequence[Gram] | None = None, *,
                        unbiased: bool = False, device: str = "cpu",
                        chunk_size: int | None = None,
                        progress: Callable[[str, int, int], None] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSIC estimates for all pairs: (cross (La, Lb), self_a (La), self_b (Lb)), float64.

    Biased (unbiased=False): <K_i, L_j> / (n-1)^2 with K, L already double-centred (a centred
    factor gives a centred Gram). Unbiased: Song et al. (2012)'s estimator, computed as the
    inner product of U-centred Gram matrices / (n (n-3)) (Szekely & Rizzo 2014). `grams_b=None`
    means A against itself. `chunk_size` is the number of Gram rows per step.
    """
    import torch

    dev = torch_device(device)
    same = grams_b is None
    sides = [list(grams_a)] if same else [list(grams_a), list(grams_b)]
    n = sides[0][0].n
    if any(g.n != n for side in sides for g in side):
        raise ZooError("Gram matrices of different sizes: rows must be paired by sample id")
    if unbiased and n < 4:
        raise ZooError(f"the unbiased HSIC estimator needs at least 4 samples, got {n}")
    # By default what fits the budget, but at least 4 chunks of 256+ rows: the upper-triangle
    # saving needs several row blocks, and tiny blocks only add overhead.
    budget = max(1, CHUNK_BYTES // (8 * n * sum(len(s) for s in sides)))
    chunk = chunk_size or min(budget, max(-(-n // 4), MIN_CHUNK_ROWS))
    stackers = [_Stacker(side, dev, unbiased, min(chunk, n)) for side in sides]
    cross = torch.zeros(len(sides[0]), len(sides[-1]), dtype=torch.float64, device=dev)
    selfs = [torch.zeros(len(side), dtype=torch.float64, device=dev) for side in sides]
    starts = range(0, n, chunk)
    for step, r0 in enumerate(starts):
        stacks = [s.rows(r0, min(n, r0 + chunk)) for s in stackers]
        cross += stacks[0] @ stacks[-1].T
        if not same:
            for acc, stack in zip(selfs, stacks):
                acc += torch.linalg.vector_norm(stack, dim=1) ** 2
        if progress:
            progress("gram", step + 1, len(starts))
    if same:
        selfs = [torch.diagonal(cross)]
    scale = n * (n - 3) if unbiased else (n - 1) ** 2
    cross_np, *self_np = (t.cpu().numpy() / scale for t in (cross, *selfs))
    # Stack row k holds input order[k]: index with the inverse permutations.
    inv_a, inv_b = (np.argsort(s.order) for s in (stackers[0], stackers[-1]))
    return cross_np[np.ix_(inv_a, inv_b)], self_np[0][inv_a], self_np[-1][inv_b]


class _Stacker:
    """One side's Gram matrices on the device, writing chunks of their rows into one buffer.

    Factors of equal width are stacked (g, n, r) so their rows come from one batched product;
    `order[k]` is the input index of stack row k.
    """

    def __init__(self, grams: list[Gram], dev: Any, unbiased: bool, max_rows: int) -> None:
        import torch

        self.n = grams[0].n
        key = [(-1 if g.factor is None else g.factor.shape[1], k) for k, g in enumerate(grams)]
        self.order = [k for _, k in sorted(key)]
        self.groups = []
        for width, members in groupby(sorted(key), key=lambda wk: wk[0]):
            ids = [k for _, k in members]
            if width < 0:  # explicit matrices stay on the host; chunks are copied over
                self.groups.append(_Group(None, [grams[k].matrix for k in ids], dev, unbiased))
            else:
                factors = torch.from_numpy(np.stack([grams[k].factor for k in ids]))
                self.groups.append(_Group(factors.to(dev, torch.float64), None, dev, unbiased))
        self.buffer = torch.empty(len(grams) * max_rows * self.n, dtype=torch.float64,
                                  device=dev)

    def rows(self, r0: int, r1: int) -> Any:
        """(layers, (r1-r0) * (n-r0)): rows r0:r1, columns r0: of every (U-)centred Gram
        matrix, with the off-diagonal block scaled by sqrt(2)."""
        rows, width = r1 - r0, self.n - r0
        stack = self.buffer[: len(self.order) * rows * width].view(-1, rows, width)
        start = 0
        for group in self.groups:
            group.rows(r0, r1, stack[start:start + group.size])
            start += group.size
        stack[:, :, rows:] *= math.sqrt(2.0)
        return stack.view(len(self.order), rows * width)


class _Group:
    """Gram matrices of one width as stacked factors (g, n, r), or explicit (n, n) matrices."""

    def __init__(self, factors: Any, matrices: list[np.ndarray] | None, dev: Any,
                 unbiased: bool) -> None:
        import torch

        self.factors, self.matrices, self.unbiased = factors, matrices, unbiased
        self.size = len(factors) if factors is not None else len(matrices)
        if not unbiased:
            return
        if factors is not None:
            diag = (factors * factors).sum(dim=2)
            sums = torch.bmm(factors, factors.sum(dim=1, keepdim=True).transpose(1, 2))[..., 0]
        else:
            k = torch.from_numpy(np.stack(matrices).astype(np.float64)).to(dev)
            diag, sums = torch.diagonal(k, dim1=1, dim2=2), k.sum(dim=2)
        n = diag.shape[1]
        off = sums - diag  # row sums with the diagonal removed
        self.u = off / (n - 2)
        self.c = off.sum(dim=1) / ((n - 1) * (n - 2))

    def rows(self, r0: int, r1: int, out: Any) -> None:
        """Write rows r0:r1, columns r0: of each (U-)centred Gram matrix into `out` (g, .., ..)."""
        import torch

        if self.factors is not None:
            torch.bmm(self.factors[:, r0:r1], self.factors[:, r0:].transpose(1, 2), out=out)
        else:
            for view, matrix in zip(out, self.matrices):
                view.copy_(torch.from_numpy(np.asarray(matrix[r0:r1, r0:], dtype=np.float64)))
        if self.unbiased:
            out -= self.u[:, r0:r1, None]
            out -= self.u[:, None, r0:]
            out += self.c[:, None, None]
            torch.diagonal(out, dim1=1, dim2=2).zero_()
