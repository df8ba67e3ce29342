"""Streaming CKA across processes: sum the accumulated HSIC sums with torch.distributed.

Each rank streams its own share of the samples through a `StreamingCKA`; `all_reduce_cka` then
sums `hsic_ab`, `hsic_aa`, `hsic_bb` and `batches` over the process group (float64, any
backend: gloo on CPU, nccl on GPUs), after which every rank's `value()` is the CKA of all ranks'
minibatches, the same number one process gets from all of them. Launch with torchrun (or any
launcher that initialises the default process group).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.metrics.streaming import StreamingCKA


def all_reduce_cka(cka: StreamingCKA, group: Any = None) -> StreamingCKA:
    """Replace `cka`'s sums by their sum over all ranks of `group` (default: the world); returns
    `cka`. Every rank must call it with accumulators of the same shape."""
    import torch
    import torch.distributed as dist

    sums = np.concatenate([cka.hsic_ab.ravel(), cka.hsic_aa, cka.hsic_bb, [cka.batches]])
    # NCCL reduces only device tensors; gloo only host ones
    device = "cuda" if dist.get_backend(group) == "nccl" else "cpu"
    flat = torch.from_numpy(sums).to(device)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    total = flat.cpu().numpy()
    ab, a = cka.hsic_ab.size, len(cka.hsic_aa)
    cka.hsic_ab = total[:ab].reshape(cka.hsic_ab.shape)
    cka.hsic_aa = total[ab:ab + a]
    cka.hsic_bb = total[ab + a:-1]
    cka.batches = int(round(total[-1]))
    return cka

