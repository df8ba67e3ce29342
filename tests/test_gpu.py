"""CUDA checks (marked `gpu`; skipped without CUDA): the device paths agree with the CPU ones.

Run on a GPU machine with `pytest -m gpu` (benchmarks/gpu_check.sh does). Tolerances follow the
working precision: float32 Gram rows on either device, float64 accumulation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.engine.allpairs import all_pairs
from zoo.metrics.cka import DebiasedCKA, LinearCKA
from zoo.metrics.gram import FLOAT32_MIN_SAMPLES, Gram, gram_inner_products
from zoo.metrics.streaming import StreamingCKA

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

EPS32 = float(np.finfo(np.float32).eps)


def related(n: int, widths: tuple[int, ...], offset: float = 0.0,
            seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))
    return [(np.tanh(latent @ rng.normal(size=(8, w))) + 0.3 * rng.normal(size=(n, w))
             + offset).astype(np.float32) for w in widths]


@pytest.mark.parametrize("metric", [LinearCKA(), DebiasedCKA()], ids=lambda m: m.name)
def test_all_pairs_cka_on_cuda_equals_cpu(metric):
    widths = (16, 64, 200)
    reps = related(FLOAT32_MIN_SAMPLES + 100, widths, offset=1e3)  # float32 route on both
    cpu, _ = all_pairs(metric, reps, device="cpu")
    gpu, _ = all_pairs(metric, reps, device="cuda")
    assert np.abs(gpu - cpu).max() <= 16 * max(widths) * EPS32


def test_gram_route_on_cuda_matches_float64_and_respects_tf32():
    reps = related(FLOAT32_MIN_SAMPLES, (32, 96), seed=1)
    grams = [Gram(factor=x.astype(np.float64)) for x in reps]
    exact = gram_inner_products(grams, precision="float64")
    fast = gram_inner_products(grams, device="cuda")
    scale = np.abs(exact[1]).max()
    for f, e in zip(fast, exact):
        assert np.abs(f - e).max() <= 8 * 96 * EPS32 * scale
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32: the route must fall back to float64
    try:
        tf32 = gram_inner_products(grams, device="cuda")
    finally:
        torch.set_float32_matmul_precision(before)
    assert np.allclose(tf32[0], exact[0], rtol=1e-10, atol=0)


def test_streaming_cka_on_cuda_equals_cpu():
    a = related(400, (8, 40), seed=2)
    b = related(400, (24,), seed=3)
    results = []
    for device in ("cpu", "cuda"):
        s = StreamingCKA(layers_a=2, layers_b=1, device=device)
        for start in range(0, 400, 100):
            s.update([x[start:start + 100] for x in a], [y[start:start + 100] for y in b])
        results.append(s.value())
    assert np.allclose(results[1], results[0], rtol=1e-9, atol=1e-12)
