"""All-pairs linear CKA, 48 layers (widths 256-2048) at n = 2000: the engine against the float32
matrix-multiply limit of this machine and against the per-pair loop of peer libraries.

One run prints:
- the machine (BLAS/LAPACK vendors, threads, load average: benchmarks/machine.py);
- engine time, best of REPEATS whole-engine runs: `prepare` (float32 layers handed over,
  `owned=True`, as a caller that loaded them does, and centred in place into their float32
  factors with float64 column means) and the Gram stage (`score_block`: Gram rows in float32,
  inner products accumulated in float64); the layers are copied for each run outside the
  timing. Prepare without handing the layers over (one new float32 array per layer) is timed
  too;
- the per-pair loop peers use (both Gram matrices and three HSIC terms per pair), timed on a
  seeded sample of pairs and extrapolated to the upper triangle;
- the float32 GEMM limit: the Gram route's minimal FLOPs (upper triangle of every Gram matrix,
  n(n+1)/2 entries x min(width, n), the narrowest factor any layer has, plus one inner product
  per distinct pair over n(n+1)/2 entries) divided by the rate of a plain n x n x n float32
  torch.mm measured here, and the fraction of it the Gram stage (and the whole engine,
  prepare included) reaches; also the fraction the stage's matrix products alone reach (every
  tile the engine forms, for every layer, by its own stacker: no inner products, no prepare), the
  ceiling of the Gram route at these tile shapes;
- the max difference against float64 references: the same Gram route in float64 over all
  pairs, and an independent feature-space float64 CKA (||Xc^T Yc||_F^2) on sampled pairs.

Half the layers are float32 with large offsets (+1e3 on every column, varying by column) so
the float64 column means are exercised. The machine may be shared: every timing is the best of
several, and the matrix-multiply rate is measured between the engine runs, so the fraction
compares figures from the same moments. Run it under `flock /tmp/zoo-bench.lock` on a shared
machine.
Run: .venv/bin/python benchmarks/bench_cka_allpairs.py [--device cuda]  (minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from machine import describe, load_line

from zoo.engine.allpairs import all_pairs, prepare_all
from zoo.metrics.cka import LinearCKA
from zoo.metrics.gram import (
    Gram,
    _Stacker,
    block_rows,
    gram_inner_products,
    gram_tiles,
    torch_device,
)

N, LAYERS = 2000, 48
WIDTHS = (256, 512, 1024, 2048)
REPEATS = 3  # engine runs, each followed by a matrix-multiply rate measurement
SAMPLED_PAIRS = 8  # peer-loop pairs actually timed (seeded), extrapolated to all pairs
CHECKED_PAIRS = 24  # pairs checked against the feature-space float64 reference


def make_layers(rng: np.random.Generator) -> list[np.ndarray]:
    """48 float32 layers of mixed widths, all driven by one latent; odd layers offset by ~1e3."""
    latent = rng.normal(size=(N, 48))
    layers = []
    for k in range(LAYERS):
        width = WIDTHS[k % len(WIDTHS)]
        mixed = np.tanh(latent @ rng.normal(size=(48, width)) / 4) + 0.5 * rng.normal(
            size=(N, width))
        if k % 2:
            mixed += 1e3 * (1 + rng.random(width))
        layers.append(mixed.astype(np.float32))
    return layers


def peer_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """One pair as peer code does it: both Gram matrices, centred by means, three HSIC terms."""

    def centred(K: torch.Tensor) -> torch.Tensor:
        return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()

    K, L = centred(X @ X.T), centred(Y @ Y.T)
    return float((K * L).sum() / ((K * K).sum().sqrt() * (L * L).sum().sqrt()))


def feature_cka64(X: np.ndarray, Y: np.ndarray) -> float:
    """Independent float64 reference: ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    Xc, Yc = (A.astype(np.float64) - A.astype(np.float64).mean(0) for A in (X, Y))
    return float(np.sum((Xc.T @ Yc) ** 2) / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)))


def mm_gflops32(device: str) -> float:
    """Best-of-3 GFLOP/s of a plain n x n x n float32 torch.mm on `device`, now."""
    a, b = torch.randn(N, N, device=device), torch.randn(N, N, device=device)
    torch.mm(a, b)
    return 2 * N**3 / min(_timed(lambda: torch.mm(a, b)) for _ in range(3)) / 1e9


def route_flops(widths: list[int], rows: int) -> tuple[float, float]:
    """(minimal, performed) FLOPs of the Gram route: Gram upper triangles + pair inner products.

    `minimal` takes min(width, n) per factor; `performed` is what the engine does: the tiles of
    `gram_tiles` at the factors' actual widths and a full layers x layers product per entry.
    """
    tri = N * (N + 1) / 2
    minimal = (2 * tri * sum(min(w, N) for w in widths)
               + 2 * tri * len(widths) * (len(widths) + 1) / 2)
    entries = sum((r1 - r0) * (c1 - c0) for block in gram_tiles(N, rows)
                  for r0, r1, c0, c1 in block)
    return minimal, 2 * entries * (sum(widths) + len(widths) ** 2)


def tile_products(grams: list[Gram], rows: int, device: str) -> tuple[float, float]:
    """(seconds, FLOPs) of the Gram route's matrix products alone, best of 3: every tile of
    `gram_tiles` formed by the engine's own stacker (all layers into one buffer), without the
    inner products."""
    tiles = [tile for block in gram_tiles(N, rows) for tile in block]
    size = max((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in tiles)
    stacker = _Stacker(grams, torch_device(device), False, torch.float32, size)

    def products() -> None:
        for tile in tiles:
            stacker.tile(*tile)

    products()
    flops = 2 * sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in tiles) * sum(
        g.factor.shape[1] for g in grams)
    return min(_timed(products) for _ in range(3)), flops


def _timed(fn: Callable[[], object]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the Gram stage, the per-pair "
                        "loop and the matrix-multiply limit run (prepare is numpy, on the CPU)")
    device = parser.parse_args().device
    rng = np.random.default_rng(0)
    layers = make_layers(rng)
    pairs = [(i, j) for i in range(LAYERS) for j in range(i, LAYERS)]
    metric = LinearCKA()
    print(describe())
    results: list[np.ndarray] = []
    t_prep, t_gram, rates, t_copying = [], [], [], []
    for _ in range(REPEATS):  # interleaved, so both bests come from the same stretch of time
        t0 = time.perf_counter()
        prepare_all(metric, layers)
        t_copying.append(time.perf_counter() - t0)
        owned = [x.copy() for x in layers]
        t0 = time.perf_counter()
        states, _ = prepare_all(metric, owned, owned=True)
        t_prep.append(time.perf_counter() - t0)
        t_gram.append(_timed(lambda states=states: results.append(
            metric.score_block(states, device=device))))
        rates.append(mm_gflops32(device))
    t_engines = [a + b for a, b in zip(t_prep, t_gram)]
    best = int(np.argmin(t_engines))
    values, rate = results[-1], max(rates)
    t_prepare, t_stage, t_engine = t_prep[best], t_gram[best], t_engines[best]
    widths = [s.gram.factor.shape[1] for s in states]
    print(f"all-pairs linear CKA: {LAYERS} layers (widths {min(WIDTHS)}..{max(WIDTHS)}, factor "
          f"widths {min(widths)}..{max(widths)}, factor dtype {states[0].gram.factor.dtype}), "
          f"n = {N}, {len(pairs)} pairs; device {device}")
    check, _ = all_pairs(metric, layers[:3])  # the public entry point gives the same numbers
    assert np.allclose(check, values[:3, :3], atol=1e-12)

    t0 = time.perf_counter()
    cross, s_a, _ = gram_inner_products([s.gram for s in states], precision="float64",
                                      device=device)
    t_ref64 = time.perf_counter() - t0
    ref64 = cross / np.sqrt(np.outer(s_a, s_a))
    checked = [pairs[k] for k in rng.choice(len(pairs), CHECKED_PAIRS, replace=False)]
    diff_feature = max(abs(values[i, j] - feature_cka64(layers[i], layers[j]))
                       for i, j in checked)

    tensors = [torch.from_numpy(x - x.mean(0)).to(device) for x in layers]  # pre-centred
    picked = [pairs[k] for k in rng.choice(len(pairs), SAMPLED_PAIRS, replace=False)]
    peer = [_timed(lambda i=i, j=j: peer_cka(tensors[i], tensors[j])) for i, j in picked]
    t_peer = float(np.mean(peer)) * len(pairs)

    rows = block_rows(N, LAYERS)
    minimal, performed = route_flops(widths, rows)
    limit = minimal / (rate * 1e9)
    t_products, product_flops = tile_products([s.gram for s in states], rows, device)
    t_engine = t_prepare + t_stage
    print(f"engine: prepare {t_prepare:.2f} s + Gram stage {t_stage:.2f} s = {t_engine:.2f} s "
          f"(best of {REPEATS} engine runs: {', '.join(f'{t:.2f}' for t in t_engines)}); "
          f"prepare into new arrays (layers not handed over) {min(t_copying):.2f} s")
    print(f"Gram stage in float64 (previous precision, reference): {t_ref64:.2f} s")
    print(f"per-pair loop (float32, peers' centring by means): {np.mean(peer) * 1e3:.0f} ms/pair "
          f"over {SAMPLED_PAIRS} sampled pairs -> {t_peer:.0f} s for all pairs "
          f"({t_peer / t_engine:.0f}x the engine)")
    print(f"float32 GEMM limit: {minimal / 1e9:.0f} GFLOP minimal Gram-route work at "
          f"{rate:.0f} GFLOP/s (plain {N}^3 torch.mm, best of {3 * REPEATS}; runs "
          f"{', '.join(f'{r:.0f}' for r in rates)}) = {limit:.2f} s; the engine performs "
          f"{performed / minimal:.2f}x the minimal FLOPs")
    print(f"fraction of the limit reached: Gram stage {limit / t_stage:.2f}, engine incl. "
          f"prepare {limit / t_engine:.2f} (aim >= 0.80); the stage's matrix products alone "
          f"(every tile, no inner products) {t_products:.2f} s, {limit / t_products:.2f} of the "
          f"limit, at {product_flops / t_products / 1e9:.0f} GFLOP/s")
    print(f"max |engine - float64 Gram route| over all pairs: {np.abs(values - ref64).max():.1e}"
          f"; max |engine - feature-space float64| over {CHECKED_PAIRS} pairs: "
          f"{diff_feature:.1e} (aim <= 1e-6)")
    print(f"at the end: {load_line()}")


if __name__ == "__main__":
    main()
