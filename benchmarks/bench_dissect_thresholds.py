"""Dissection thresholds: streaming radix select against an in-memory np.partition baseline.

Activations of a (images x 28 x 28 x 256) layer are generated chunk by chunk from per-chunk
seeds, so the streaming pass never holds the dataset; the baseline stacks every value and
partitions it. Both give the same thresholds (checked). The streaming time includes generating
every chunk four times (one read per radix pass), as re-reading features would in real use. Peak
memory is measured with
tracemalloc (numpy's buffers included); the claim is that the streaming peak stays flat as the
dataset grows while the baseline's grows with it.

Run: .venv/bin/python benchmarks/bench_dissect_thresholds.py  (about a minute on 2 cores)
"""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
from machine import describe, load_line  # benchmarks/machine.py

from zoo.concepts.threshold import top_quantile_thresholds

GRID, UNITS, PER_CHUNK, QUANTILE = 28, 256, 2, 0.005


def chunk(i: int) -> np.ndarray:
    """Chunk i of the dataset: (PER_CHUNK * GRID * GRID, UNITS) float32, ReLU-like values."""
    rng = np.random.default_rng(i)
    return np.maximum(rng.normal(size=(PER_CHUNK * GRID * GRID, UNITS)), 0).astype(np.float32)


def measure(run) -> tuple[np.ndarray, float, float]:
    """(result, seconds, peak MiB of traced allocations) of `run()`."""
    tracemalloc.start()
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, seconds, peak


def streaming(chunks: int) -> np.ndarray:
    batches = lambda: ((chunk(i), None) for i in range(chunks))  # noqa: E731
    return top_quantile_thresholds(batches, UNITS, QUANTILE)[0]


def in_memory(chunks: int) -> np.ndarray:
    values = np.concatenate([chunk(i) for i in range(chunks)])
    k = math.ceil(QUANTILE * len(values))
    return np.partition(values, len(values) - k - 1, axis=0)[len(values) - k - 1]


def main() -> None:
    print(describe())
    print(f"top-{QUANTILE} thresholds of {UNITS} units on a {GRID}x{GRID} grid")
    print(f"{'images':>7} {'values':>10} {'stream s':>9} {'base s':>7} {'time ratio':>10} "
          f"{'stream MiB':>10} {'base MiB':>9} {'mem ratio':>9}")
    for chunks in (16, 64):
        ours, t_s, m_s = measure(lambda chunks=chunks: streaming(chunks))
        ref, t_b, m_b = measure(lambda chunks=chunks: in_memory(chunks))
        assert np.array_equal(ours, ref), "thresholds differ from the in-memory baseline"
        images = chunks * PER_CHUNK
        print(f"{images:>7} {images * GRID * GRID * UNITS:>10,} {t_s:>9.2f} {t_b:>7.2f} "
              f"{t_s / t_b:>10.2f} {m_s:>10.1f} {m_b:>9.1f} {m_s / m_b:>9.3f}")
    print("identical thresholds; streaming memory is per chunk, the baseline holds every value")


if __name__ == "__main__":
    main()
    print(f"at the end: {load_line()}")
