"""Streaming CKA across 2 processes (gloo on CPU, loopback only) equals one process."""

from __future__ import annotations

import numpy as np

from zoo.metrics.streaming import StreamingCKA

BATCH, BATCHES, WORLD = 16, 6, 2


def batches():
    """Paired minibatches of two layers on side A and one on side B (deterministic)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * BATCHES, 5))
    a = [x, np.tanh(x @ rng.normal(size=(5, 8)))]
    b = [x @ rng.normal(size=(5, 3)) + 0.5 * rng.normal(size=(len(x), 3))]
    return [([l[s:s + BATCH] for l in a], [l[s:s + BATCH] for l in b])
            for s in range(0, len(x), BATCH)]


def rank_main(rank: int, store: str, out: str) -> None:
    """One rank: stream every WORLD-th minibatch, all-reduce, save the value."""
    import torch.distributed as dist

    from zoo.metrics.distributed import all_reduce_cka

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=WORLD)
    try:
        cka = StreamingCKA(2, 1)
        for a, b in batches()[rank::WORLD]:
            cka.update(a, b)
        all_reduce_cka(cka)
        np.save(f"{out}/rank{rank}.npy", np.append(cka.value().ravel(), cka.batches))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    # fork: the ranks reuse this process's imports (spawn would re-import torch twice)
    mp.start_processes(rank_main, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD,
                       join=True, start_method="fork")
    whole = StreamingCKA(2, 1)
    for a, b in batches():
        whole.update(a, b)
    expected = np.append(whole.value().ravel(), whole.batches)
    assert 0.3 < whole.value().min() < 1.0  # related layers: a real number, not a constant
    for rank in range(WORLD):
        got = np.load(tmp_path / f"rank{rank}.npy")
        assert got[-1] == BATCHES
        np.testing.assert_allclose(got, expected, rtol=1e-12)
