"""Streaming (minibatch) linear CKA for datasets too large to hold (Nguyen et al. 2021).

CKA_mb = sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) * sum_b HSIC_1(L_b, L_b)), with
HSIC_1 Song et al.'s unbiased estimator on minibatch b. Each minibatch's features are centred
in float64 before its Gram matrices are formed, and the sums are kept in float64; there is no
epsilon and no clamping. Memory is one minibatch, whatever the number of samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.metrics.base import as_matrix, centre
from zoo.metrics.gram import Gram, gram_inner_products


class StreamingCKA:
    """Minibatch CKA between `layers_a` and `layers_b` layers (layers_b=None: A with itself).

    Feed paired minibatches with `update(batch_a, batch_b)` (an (m, d) array for one layer or a
    list with one per layer; m >= 4) and read `value()`. The accumulated sums are the public
    float64 arrays `hsic_ab`, `hsic_aa`, `hsic_bb` and the int `batches`: summing them over
    processes (e.g. torch.distributed.all_reduce) and then calling `value()` gives the CKA of
    all processes' data, exactly as `merge` does in one process.
    """

    def __init__(self, layers_a: int = 1, layers_b: int | None = 1,
                 device: str = "cpu") -> None:
        self.layers_a = layers_a
        self.layers_b = layers_b
        self.device = device
        width_b = layers_a if layers_b is None else layers_b
        self.hsic_ab = np.zeros((layers_a, width_b))
        self.hsic_aa = np.zeros(layers_a)
        self.hsic_bb = np.zeros(width_b)
        self.batches = 0

    def update(self, batch_a: np.ndarray | Sequence[np.ndarray],
               batch_b: np.ndarray | Sequence[np.ndarray] | None = None) -> None:
        """Add one minibatch: rows paired across every layer of both sides."""
        a = _layers(batch_a, self.layers_a, "A")
        if (batch_b is None) != (self.layers_b is None):
            raise ZooError("pass batch_b exactly when the StreamingCKA was made with layers_b")
        b = None if batch_b is None else _layers(batch_b, self.layers_b, "B")
        sizes = {len(x) for x in a + (b or [])}
        if len(sizes) != 1:
            raise ZooError(f"minibatch layers have different numbers of rows {sorted(sizes)}")
        if sizes.pop() < 4:
            raise ZooError("streaming CKA needs minibatches of at least 4 samples (the unbiased "
                           "HSIC estimator divides by m - 3)")
        cross, self_a, self_b = gram_inner_products(
            [Gram(factor=centre(x)) for x in a],
            None if b is None else [Gram(factor=centre(x)) for x in b],
            unbiased=True, device=self.device)
        self.hsic_ab += cross
        self.hsic_aa += self_a
        self.hsic_bb += self_b
        self.batches += 1

    def merge(self, other: StreamingCKA) -> None:
        """Add another accumulator's sums (e.g. from another shard of the same data)."""
        if self.hsic_ab.shape != other.hsic_ab.shape:
            raise ZooError(f"cannot merge accumulators of shapes {self.hsic_ab.shape} and "
                           f"{other.hsic_ab.shape}")
        self.hsic_ab += other.hsic_ab
        self.hsic_aa += other.hsic_aa
        self.hsic_bb += other.hsic_bb
        self.batches += other.batches

    def value(self) -> np.ndarray:
        """CKA matrix (layers_a, layers_b); NaN where a layer had no variance (see `reasons`)."""
        if not self.batches:
            raise ZooError("streaming CKA has seen no minibatch yet")
        denom = np.sqrt(np.outer(self.hsic_aa, self.hsic_bb))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, self.hsic_ab / denom, np.nan)

    def reasons(self) -> np.ndarray:
        """Object array of str matching `value()`: why an entry is NaN, "" where defined."""
        out = np.full(self.hsic_ab.shape, "", dtype=object)
        out[self.hsic_aa <= 0, :] = "layer of A has no variance in any minibatch"
        out[:, self.hsic_bb <= 0] = "layer of B has no variance in any minibatch"
        return out


def _layers(batch: np.ndarray | Sequence[np.ndarray], count: int, side: str) -> list[np.ndarray]:
    layers = [batch] if isinstance(batch, np.ndarray) else list(batch)
    if len(layers) != count:
        raise ZooError(f"side {side}: expected {count} layer(s) in the minibatch, got "
                       f"{len(layers)}")
    return [as_matrix(x) for x in layers]
