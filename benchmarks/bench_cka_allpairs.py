"""All-pairs linear CKA, 48 layers at n = 2000: the zoo engine vs the per-pair loop of peers.

Peer libraries compute a layer x layer CKA matrix one pair at a time, rebuilding both Gram
matrices and all three HSIC terms for every pair. The engine prepares each layer once and
scores all pairs with one chunked product of stacked Gram rows. Both run here, in one process,
on the same synthetic features (widths 64..1024). The peer loop is timed on a seeded sample of
pairs and extrapolated to the upper triangle (the cheapest loop a peer could run); its values
are checked against the engine's. The Gram-product stage's GFLOP/s is compared with a plain
float64 torch.mm of n x n matrices measured in the same run.

Timings are best-of-2 (engine) and best-of-3 (plain mm), as the machine may be shared.
Run: .venv/bin/python benchmarks/bench_cka_allpairs.py  (about a minute on 2 cores)
"""

from __future__ import annotations

import time

import numpy as np
import torch

from zoo.engine import all_pairs, prepare_all
from zoo.metrics.cka import LinearCKA
from zoo.metrics.gram import CHUNK_BYTES, MIN_CHUNK_ROWS

N, LAYERS = 2000, 48
WIDTHS = (64, 128, 256, 512, 1024)
SAMPLED_PAIRS = 12  # peer pairs actually timed (seeded), extrapolated to all pairs
VERBATIM_PAIRS = 2  # pairs timed for the widely copied H @ K @ H variant


def make_layers(rng: np.random.Generator) -> list[np.ndarray]:
    """48 float32 layers of mixed widths, all driven by one latent so they are related."""
    latent = rng.normal(size=(N, 48))
    layers = []
    for k in range(LAYERS):
        width = WIDTHS[k % len(WIDTHS)]
        mixed = np.tanh(latent @ rng.normal(size=(48, width)) / 4) + 0.5 * rng.normal(
            size=(N, width))
        layers.append(mixed.astype(np.float32))
    return layers


def peer_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """One pair as peer code does it: both Gram matrices, centred by means, three HSIC terms."""

    def centred(K: torch.Tensor) -> torch.Tensor:
        return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()

    K, L = centred(X @ X.T), centred(Y @ Y.T)
    return float((K * L).sum() / ((K * K).sum().sqrt() * (L * L).sum().sqrt()))


def peer_cka_verbatim(X: torch.Tensor, Y: torch.Tensor) -> float:
    """The widely copied variant: centring as H @ K @ H with an explicit n x n H (O(n^3))."""
    n = X.shape[0]
    H = torch.eye(n, dtype=X.dtype) - 1.0 / n

    def hsic(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return (H @ (A @ A.T) @ H * (H @ (B @ B.T) @ H)).sum()

    return float(hsic(X, Y) / (hsic(X, X).sqrt() * hsic(Y, Y).sqrt()))


def mm_gflops(dtype: torch.dtype) -> float:
    """Best-of-3 GFLOP/s of a plain n x n x n torch.mm on this machine."""
    a, b = torch.randn(N, N, dtype=dtype), torch.randn(N, N, dtype=dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(3))
    return 2 * N**3 / best / 1e9


def gram_stage_flops(widths: list[int]) -> float:
    """Flops of the engine's Gram stage with its default chunking (upper-triangle blocks)."""
    budget = max(1, CHUNK_BYTES // (8 * N * len(widths)))
    chunk = min(budget, max(-(-N // 4), MIN_CHUNK_ROWS))
    flops = 0.0
    for r0 in range(0, N, chunk):
        rows, cols = min(chunk, N - r0), N - r0
        flops += 2.0 * rows * cols * (sum(widths) + len(widths) ** 2)
    return flops


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    rng = np.random.default_rng(0)
    layers = make_layers(rng)
    widths = [x.shape[1] for x in layers]
    pairs = [(i, j) for i in range(LAYERS) for j in range(i, LAYERS)]
    print(f"all-pairs linear CKA: {LAYERS} layers (widths {min(widths)}..{max(widths)}), n = {N},"
          f" {len(pairs)} pairs (upper triangle), torch threads = {torch.get_num_threads()}")

    metric = LinearCKA()
    t0 = time.perf_counter()
    states, _ = prepare_all(metric, layers)
    t_prepare = time.perf_counter() - t0
    # Best of 2 for the engine and of 3 for plain mm: the machine may be shared.
    results = []
    t_gram = min(_timed(lambda: results.append(metric.score_block(states))) for _ in range(2))
    values = results[0]
    t_engine = t_prepare + t_gram
    check, _ = all_pairs(metric, layers[:3])  # the public entry point gives the same numbers
    assert np.allclose(check, values[:3, :3], atol=1e-12)

    picked = [pairs[k] for k in rng.choice(len(pairs), SAMPLED_PAIRS, replace=False)]
    tensors = [torch.from_numpy(x) for x in layers]
    peer_times, diffs = [], []
    for i, j in picked:
        t0 = time.perf_counter()
        v = peer_cka(tensors[i], tensors[j])
        peer_times.append(time.perf_counter() - t0)
        diffs.append(abs(v - values[i, j]))
    t_peer = float(np.mean(peer_times)) * len(pairs)
    verbatim = [_timed(lambda i=i, j=j: peer_cka_verbatim(tensors[i], tensors[j]))
                for i, j in picked[:VERBATIM_PAIRS]]
    t_verbatim = float(np.mean(verbatim)) * len(pairs)

    peak64 = mm_gflops(torch.float64)
    peak32 = mm_gflops(torch.float32)
    gram_gflops = gram_stage_flops(widths) / t_gram / 1e9

    print(f"engine (float64): prepare {t_prepare:.2f} s + Gram-product stage {t_gram:.2f} s "
          f"= {t_engine:.2f} s")
    print(f"peer per-pair loop (float32, centring by means): {np.mean(peer_times) * 1e3:.0f} ms"
          f"/pair over {SAMPLED_PAIRS} sampled pairs -> {t_peer:.0f} s for all pairs")
    print(f"peer per-pair loop, H @ K @ H centring (widely copied): "
          f"{np.mean(verbatim):.2f} s/pair over {VERBATIM_PAIRS} pairs -> {t_verbatim:.0f} s")
    print(f"max |engine - peer| on the sampled pairs: {max(diffs):.1e}")
    print(f"speed-up vs peer loop: {t_peer / t_engine:.1f}x (aim >= 30x); "
          f"vs the H @ K @ H loop: {t_verbatim / t_engine:.0f}x")
    print(f"plain torch.mm {N}x{N}x{N}: {peak64:.1f} GFLOP/s float64, {peak32:.1f} GFLOP/s "
          f"float32")
    print(f"Gram-product stage: {gram_gflops:.1f} GFLOP/s float64 = {gram_gflops / peak64:.2f} "
          f"of plain float64 mm throughput (aim >= 0.5)")


if __name__ == "__main__":
    main()
