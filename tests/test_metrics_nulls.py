"""Aggregate nulls and calibrated scores (zoo.metrics.nulls): known answers on constructed draws,
uniform best-match and model-max p-values under a planted null, rejection under planted signal,
and the columns they add to `zoo.compare_models(...).table()`."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest, kstwo

from zoo.metrics.cka import LinearCKA
from zoo.metrics.nulls import (
    ALPHA,
    NullDraws,
    best_match_pvalues,
    block_mean_pvalues,
    calibrated_scores,
    max_pvalue,
    pair_pvalues,
    permutation_draws,
)
from zoo.metrics.stats import permutation_pvalues

WIDTHS_A, WIDTHS_B, N = (4, 6, 8), (3, 5, 7, 9), 30
PERMUTATIONS, DRAWS = 49, 200


class PairwiseCKA(LinearCKA):
    """Linear CKA scored pair by pair in numpy (the same values; no torch call per draw)."""

    def has_block(self, **params):
        return False


def independent(rng):
    return ([rng.normal(size=(N, d)) for d in WIDTHS_A], [rng.normal(size=(N, d))
                                                          for d in WIDTHS_B])


def shared_signal(rng, strength=3.0):
    """Every layer of A and of B a noisy nonlinear view of one latent (n, 4) signal."""
    latent = rng.normal(size=(N, 4))
    A, B = independent(rng)
    return ([strength * np.tanh(latent @ rng.normal(size=(4, x.shape[1]))) + x for x in A],
            [strength * np.tanh(latent @ rng.normal(size=(4, x.shape[1]))) + x for x in B])


def test_hand_case_pvalues_and_calibration():
    observed = np.array([[0.97, 0.2], [0.1, 0.3]])
    null = np.stack([np.full((2, 2), (k + 0.5) / 20) for k in range(19)])  # 0.025 ... 0.925
    d = NullDraws(observed, null, "similarity")
    # 0.97 beats all 19 draws: 1/20; 0.2 is reached by draws k >= 4 (15): 16/20; 0.1 by k >= 2
    # (17): 18/20; 0.3 by k >= 6 (13): 14/20
    np.testing.assert_allclose(pair_pvalues(d), [[1 / 20, 16 / 20], [18 / 20, 14 / 20]])
    crit, cal = calibrated_scores(d, LinearCKA())
    np.testing.assert_allclose(crit, 0.925)  # the 95% quantile of 19 draws: the largest
    np.testing.assert_allclose(cal, [[(0.97 - 0.925) / (1 - 0.925), 0], [0, 0]])
    column, p, _ = best_match_pvalues(d)
    assert column.tolist() == [0, 1]
    np.testing.assert_allclose(p, [1 / 20, 14 / 20])  # each row's best against draws' row best
    top = max_pvalue(d)
    assert (top["layer_a"], top["layer_b"], top["p"]) == (0, 0, 1 / 20)
    blocks = block_mean_pvalues(d, ["x", "y"], ["u", "u"])
    # block x-u: mean 0.585, reached by draws k >= 12 (7): 8/20; block y-u: mean 0.2: 16/20
    assert [b["p_mean"] for b in blocks] == pytest.approx([8 / 20, 16 / 20])


def test_distances_are_tested_downwards():
    observed = np.array([[0.1, 0.9]])
    null = np.stack([np.full((1, 2), v) for v in np.linspace(0.5, 1.0, 9)])
    d = NullDraws(observed, null, "distance")
    np.testing.assert_allclose(pair_pvalues(d), [[1 / 10, 8 / 10]])  # 7 draws <= 0.9
    crit, cal = calibrated_scores(d, type("D", (), {"kind": "distance"})())
    c = np.quantile(null[:, 0, 0], ALPHA, method="lower")
    np.testing.assert_allclose(crit, c)
    np.testing.assert_allclose(cal, [[(c - 0.1) / c, 0.0]])  # best distance is 0
    assert best_match_pvalues(d)[0].tolist() == [0]  # the smallest distance is the best match


def test_pair_pvalues_are_the_shared_permutation_pvalues():
    rng = np.random.default_rng(1)
    A, B = shared_signal(rng, 0.3)
    draws = permutation_draws(PairwiseCKA(), A, B, permutations=19, seed=4)
    np.testing.assert_array_equal(pair_pvalues(draws), permutation_pvalues(
        PairwiseCKA(), A, B, permutations=19, seed=4))


def ks_limit(samples: int, permutations: int, level: float = 1e-3) -> float:
    """KS distance a correct permutation p-value stays under with probability 1 - level: the
    continuous critical value plus the grid's step (p takes values k / (permutations + 1))."""
    return float(kstwo.ppf(1 - level, samples)) + 1 / (permutations + 1)


def null_runs(make, draws, seed):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(draws):
        A, B = make(rng)
        out.append(permutation_draws(PairwiseCKA(), A, B, permutations=PERMUTATIONS,
                                     seed=1000 + k))
    return out


@pytest.fixture(scope="module")
def planted_null():
    return null_runs(independent, DRAWS, 0)


def test_best_match_and_max_pvalues_are_uniform_under_a_planted_null(planted_null):
    limit = ks_limit(DRAWS, PERMUTATIONS)
    best = np.array([best_match_pvalues(d)[1] for d in planted_null])  # (draws, layers of A)
    for row in range(len(WIDTHS_A)):
        assert kstest(best[:, row], "uniform").statistic < limit, row
    top = np.array([max_pvalue(d)["p"] for d in planted_null])
    assert kstest(top, "uniform").statistic < limit


def test_the_per_pair_pvalue_at_the_best_match_is_not_uniform(planted_null):
    """The same test fails the naive answer (the pair's own p-value at the selected pair),
    which ignores the selection over B's layers: it is too small."""
    naive = []
    for d in planted_null:
        column = best_match_pvalues(d)[0][0]
        naive.append(pair_pvalues(d)[0, column])
    assert kstest(naive, "uniform").statistic > ks_limit(DRAWS, PERMUTATIONS)


def test_planted_shared_signal_is_rejected():
    for d in null_runs(shared_signal, 10, 7):
        _, p, adjusted = best_match_pvalues(d)
        assert (p == 1 / (PERMUTATIONS + 1)).all() and (adjusted < 0.05).all()
        assert max_pvalue(d)["p"] < 0.05
        _, cal = calibrated_scores(d, LinearCKA())
        assert (np.nanmax(cal, axis=1) > 0).all()


def test_comparison_table_carries_calibrated_scores_and_aggregate_pvalues():
    import zoo

    result = zoo.compare_models("toy/cnn", "toy/vit", "samples", "cka,procrustes-angular",
                                permutations=9, cache=False)
    table = result.table()
    for column in ("p_value", "p_adjusted", "critical", "calibrated", "p_best",
                   "p_best_adjusted"):
        assert column in table.columns
    # one best-match p per layer of A and metric, on that layer's best cell
    best = table.dropna(subset=["p_best"])
    assert len(best) == 2 * len(result.a.layers)
    assert {"calibrated", "p_best", "p_best_adjusted"} <= set(result.best_matches("cka").columns)
    roles = result.role_summary("cka")
    assert all("p_mean" in r and "p_mean_adjusted" in r for r in roles)
    assert any("Model-level best pair" in n for n in result.baseline_notes("cka"))


def test_list_metrics_names_the_null_methods():
    from tests.conftest import run_zoo

    out = run_zoo("list", "metrics", env={"COLUMNS": "250"}).stdout
    assert "Groger et al. 2026" in out and "Westfall & Young 1993" in out
