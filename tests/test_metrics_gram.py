"""Gram-route inner products (zoo.metrics.gram): float32 Gram rows, float64 accumulation.

References are computed independently in float64 (feature space for the biased HSIC, explicit
U-centred n x n matrices for the unbiased one). Tolerances follow from the working precision:
a float32 Gram entry summed over r products is off by at most ~r * eps32 of |z_i| |z_j|, so an
inner product of two such matrices, and a CKA made of three, is off by at most a small multiple
of r * eps32 on any BLAS.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.errors import ZooError
from zoo.metrics.gram import FLOAT32_MIN_SAMPLES, STRIP_ROWS, Gram, gram_inner_products, gram_tiles

EPS32 = float(np.finfo(np.float32).eps)


def layers(n: int, widths: tuple[int, ...], offset: float, seed: int = 0) -> list[np.ndarray]:
    """Related float32 layers; every column shifted by `offset` times a factor in [1, 2)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))
    out = []
    for w in widths:
        x = np.tanh(latent @ rng.normal(size=(8, w))) + 0.3 * rng.normal(size=(n, w))
        out.append((x + offset * (1 + rng.random(w))).astype(np.float32))
    return out


def centred64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - x.mean(axis=0)


def cka_from(cross: np.ndarray, self_a: np.ndarray, self_b: np.ndarray) -> np.ndarray:
    return cross / np.sqrt(np.outer(self_a, self_b))


def reference_cka(xs: list[np.ndarray]) -> np.ndarray:
    """Biased linear CKA in float64, feature space: ||Xc^T Yc||_F^2 over the two norms."""
    zs = [centred64(x) for x in xs]
    hsic = np.array([[np.sum((a.T @ b) ** 2) for b in zs] for a in zs])
    return cka_from(hsic, np.diag(hsic), np.diag(hsic))


def reference_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC from explicit Gram matrices, float64."""
    n = len(x)
    K, L = x.astype(np.float64) @ x.T.astype(np.float64), y.astype(np.float64) @ y.T
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    ones = K.sum() * L.sum() / ((n - 1) * (n - 2))
    return float((np.sum(K * L) + ones - 2.0 / (n - 2) * K.sum(0) @ L.sum(0)) / (n * (n - 3)))


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_float32_route_matches_float64_reference(offset):
    widths = (16, 48, 64, 64)
    xs = layers(FLOAT32_MIN_SAMPLES, widths, offset)  # "auto" picks float32 at this n
    tol = 8 * max(widths) * EPS32
    cross, s_a, s_b = gram_inner_products([Gram(factor=x.astype(np.float64)) for x in xs],
                                          chunk_size=100)
    # With offset 1e3, centring after a float32 cast would lose ~1e3 * eps32 per entry; the
    # float64 centring keeps the same tolerance as without offset.
    assert np.abs(cka_from(cross, s_a, s_b) - reference_cka(xs)).max() <= tol


def test_float32_route_close_to_float64_route_in_every_mode():
    xs = layers(64, (8, 24, 24), offset=50.0, seed=1)
    ys = layers(64, (12, 40), offset=-7.0, seed=2)
    grams = [Gram(factor=x.astype(np.float64)) for x in xs]
    others = [Gram(factor=y.astype(np.float64)) for y in ys]
    tol = 8 * 40 * EPS32
    for unbiased in (False, True):
        for b in (None, others):
            exact = gram_inner_products(grams, b, unbiased=unbiased, precision="float64")
            for chunk in (1, 7, None):
                fast = gram_inner_products(grams, b, unbiased=unbiased, precision="float32",
                                           chunk_size=chunk)
                for f, e in zip(fast, exact):  # relative to the self terms' scale
                    assert np.abs(f - e).max() <= tol * np.abs(exact[1]).max()


def test_unbiased_route_matches_explicit_reference():
    xs = layers(40, (6, 30), offset=20.0, seed=3)
    cross, s_a, _ = gram_inner_products([Gram(factor=x.astype(np.float64)) for x in xs],
                                        unbiased=True, precision="float64")
    zs = [centred64(x) for x in xs]
    assert cross[0, 1] == pytest.approx(reference_unbiased(zs[0], zs[1]), rel=1e-10)
    assert s_a[1] == pytest.approx(reference_unbiased(zs[1], zs[1]), rel=1e-10)
    # Explicit (n, n) matrices take the host route and agree with the factor route.
    mats = [Gram(matrix=z @ z.T) for z in zs]
    via_matrices = gram_inner_products(mats, unbiased=True, precision="float64", chunk_size=9)
    assert np.allclose(via_matrices[0], cross, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("n", "rows"), [(7, 1), (10, 3), (300, 512), (1000, 256)])
def test_tiles_count_every_entry_of_a_symmetric_matrix_once(n, rows):
    # A tile's square on the diagonal counts once, the rest twice: W + W^T must be 2 everywhere.
    weights = np.zeros((n, n))
    tiles = [tile for block in gram_tiles(n, rows) for tile in block]
    for r0, r1, c0, c1 in tiles:
        square = r1 - r0 if c0 == r0 else 0
        weights[r0:r1, c0:c0 + square] += 1.0
        weights[r0:r1, c0 + square:c1] += 2.0
    assert np.array_equal(weights + weights.T, np.full((n, n), 2.0))
    formed = sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in tiles)
    assert formed <= n * (n + 1) / 2 + n * min(rows, STRIP_ROWS) / 2


@pytest.mark.parametrize("unbiased", [False, True])
def test_diagonal_strips_match_explicit_matrices(unbiased):
    # n > STRIP_ROWS: blocks' diagonal squares are formed in strips, on both routes.
    xs = layers(2 * STRIP_ROWS + 44, (5, 40), offset=30.0, seed=5)
    zs = [centred64(x) for x in xs]
    grams = [Gram(factor=x.astype(np.float64)) for x in xs]
    via_factors = gram_inner_products(grams, grams[:1], unbiased=unbiased, precision="float64")
    via_matrices = gram_inner_products([Gram(matrix=z @ z.T) for z in zs], unbiased=unbiased,
                                       precision="float64", chunk_size=200)
    assert np.allclose(via_factors[0][:, 0], via_matrices[0][:, 0], rtol=1e-10, atol=0)
    assert np.allclose(via_factors[1], via_matrices[1], rtol=1e-10, atol=0)
    if unbiased:
        assert via_factors[0][1, 0] == pytest.approx(reference_unbiased(zs[1], zs[0]), rel=1e-10)
    else:
        assert np.allclose(cka_from(*via_matrices), reference_cka(xs), rtol=1e-10, atol=0)


def test_reduced_float32_matmul_precision_falls_back_to_float64():
    xs = layers(FLOAT32_MIN_SAMPLES, (8, 8), offset=0.0, seed=4)
    grams = [Gram(factor=x.astype(np.float64)) for x in xs]
    exact = gram_inner_products(grams, precision="float64")[0]
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        auto = gram_inner_products(grams)[0]
    finally:
        torch.set_float32_matmul_precision(before)
    assert np.allclose(auto, exact, rtol=1e-12, atol=0)


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ZooError, match="precision"):
        gram_inner_products([Gram(factor=np.ones((5, 2)))], precision="half")
