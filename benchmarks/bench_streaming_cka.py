"""Streaming (minibatch) CKA at n = 100,000 samples: peak memory and time.

Each configuration runs in a fresh subprocess that streams synthetic paired features through
`StreamingCKA` in minibatches (features are generated batch by batch, never held in full) and
reports its peak resident memory (getrusage ru_maxrss, the true OS-level peak, including
Python, numpy and torch themselves) and the resident memory right after the imports (torch
included). For
scale, the script prints what holding the features (float32) and one n x n float64 Gram matrix
would take.

Run: .venv/bin/python benchmarks/bench_streaming_cka.py  (under a minute on 2 idle cores)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from machine import describe, load_line  # benchmarks/machine.py

N = 100_000
BATCH = 1000
CONFIGS = [(64,), (1024,), (64, 256, 1024)]  # layer widths on each side
LIMIT_MB = 2048


def child(widths: tuple[int, ...]) -> None:
    """Stream N samples of len(widths) layers per side; print figures as JSON."""
    import numpy as np
    import torch  # loaded before the baseline reading, as update() needs it

    from zoo.metrics.streaming import StreamingCKA

    # Minibatch operations are small: one thread avoids thread-synchronisation stalls, which
    # dominate on a shared CPU. Memory does not depend on it.
    torch.set_num_threads(1)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    maps_a = [rng.normal(size=(32, w)).astype(np.float32) for w in widths]
    maps_b = [rng.normal(size=(32, w)).astype(np.float32) for w in widths]
    cka = StreamingCKA(len(widths), len(widths))
    t0 = time.perf_counter()
    for start in range(0, N, BATCH):
        batch_rng = np.random.default_rng(start)
        latent = batch_rng.normal(size=(BATCH, 32)).astype(np.float32)
        a = [np.tanh(latent @ m) for m in maps_a]
        b = [latent @ m + batch_rng.normal(size=(BATCH, m.shape[1])).astype(np.float32)
             for m in maps_b]
        cka.update(a, b)
    elapsed = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "base_mb": base_mb, "seconds": elapsed,
                      "diag": np.diag(cka.value()).round(4).tolist()}))


def main() -> None:
    print(describe())
    print(f"streaming linear CKA, n = {N:,} samples in minibatches of {BATCH} (float64 sums), "
          "torch intra-op threads = 1")
    for widths in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--child", ",".join(map(str, widths))],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.splitlines()[-1])
        full_gb = (N * sum(widths) * 2 * 4 + N * N * 8) / 2**30
        print(f"widths {'/'.join(map(str, widths)):>12} per side: peak {r['peak_mb']:6.0f} MB "
              f"(after imports {r['base_mb']:4.0f} MB; limit {LIMIT_MB} MB, "
              f"{'ok' if r['peak_mb'] < LIMIT_MB else 'OVER'}), {r['seconds']:5.1f} s, "
              f"matched-layer CKA {r['diag']}; in-memory features + one Gram: {full_gb:.0f} GB")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(tuple(int(w) for w in sys.argv[2].split(",")))
    else:
        main()
        print(f"at the end: {load_line()}")
