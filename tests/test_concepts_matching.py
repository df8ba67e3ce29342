"""Concept-free unit matching: correlations of activation maps and mutual best buddies."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.concepts import best_buddies
from zoo.concepts.maps import UnitMaps, upsample
from zoo.concepts.matching import unit_correlation
from zoo.errors import DataError
from zoo.features.layers import LayerFeatures


def _ids(n: int) -> list[str]:
    return [f"img{i}" for i in range(n)]


def test_correlation_equals_numpy_corrcoef_on_the_common_grid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 4, 4, 3)).astype(np.float32)
    b = rng.normal(size=(7, 2, 2, 2)).astype(np.float32)
    corr = unit_correlation(UnitMaps(a), UnitMaps(b), (4, 4), chunk=3)
    flat_a = a.reshape(-1, 3)
    flat_b = upsample(b, (4, 4)).reshape(-1, 2)
    expected = np.corrcoef(flat_a.T, flat_b.T)[:3, 3:]
    np.testing.assert_allclose(corr, expected, atol=1e-6)


def test_permuted_rescaled_units_are_found_as_mutual_best_buddies():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(12, 5, 5, 6)).astype(np.float32)
    perm = rng.permutation(6)
    b = 3.0 * a[..., perm] + 7.0 + rng.normal(0, 0.05, a.shape).astype(np.float32)
    b = np.concatenate([b, np.full((12, 5, 5, 1), 2.0, np.float32)], axis=-1)  # a constant unit
    match = best_buddies(a, b)
    assert sorted((i, j) for i, j, _ in match.pairs) == sorted(
        (int(perm[j]), j) for j in range(6))
    assert all(r > 0.99 for _, _, r in match.pairs)
    assert np.isnan(match.corr[:, 6]).all()
    assert match.notes and "constant" in match.notes[0]


def test_rows_are_paired_by_sample_id_and_tokens_use_their_grid():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(8, 3, 3, 4)).astype(np.float32)
    tokens = np.concatenate([np.zeros((8, 1, 4), np.float32), maps.reshape(8, 9, 4)], axis=1)
    perm = rng.permutation(8)
    a = LayerFeatures(maps, "NCHW", _ids(8))
    b = LayerFeatures(tokens[perm], "NLC", [_ids(8)[i] for i in perm], prefix_tokens=1)
    match = best_buddies(a, b)
    assert sorted((i, j) for i, j, _ in match.pairs) == [(u, u) for u in range(4)]
    assert all(r == pytest.approx(1.0) for _, _, r in match.pairs)
    with pytest.raises(DataError, match="samples"):
        best_buddies(maps, maps[:5])
