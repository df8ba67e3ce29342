"""Closed-form pairwise alignments: a planted rotation is recovered, unrelated layers score ~0."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.align import align_pair
from zoo.align.pairwise import split_rows
from zoo.errors import ZooError


def rotated_pair(n: int = 500, d: int = 8, noise: float = 0.01, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    Y = X @ Q + noise * rng.normal(size=(n, d)) + 5.0
    return X, Y, Q


def test_procrustes_recovers_a_planted_rotation():
    X, Y, Q = rotated_pair()
    fit = align_pair(X, Y, "procrustes")
    np.testing.assert_allclose(fit.x_map, Q, atol=5e-3)
    np.testing.assert_allclose(fit.x_map.T @ fit.x_map, np.eye(8), atol=1e-3)  # orthogonal
    assert fit.score > 0.9999 and fit.score_name == "r2"
    np.testing.assert_allclose(fit.transform_x(X), Y - fit.y_mean, atol=0.05)


def test_procrustes_recovers_rotation_and_scale():
    X, Y, Q = rotated_pair()
    fit = align_pair(X, 3.0 * Y, "procrustes")
    np.testing.assert_allclose(fit.x_map, 3.0 * Q, atol=2e-2)


def test_ridge_and_cca_see_the_rotation_on_held_out_rows():
    X, Y, Q = rotated_pair()
    ridge = align_pair(X, Y, "ridge", alpha=1e-6)
    np.testing.assert_allclose(ridge.x_map, Q, atol=5e-3)
    assert ridge.score > 0.9999
    cca = align_pair(X, Y, "cca", n_components=4)
    assert cca.score > 0.9999 and cca.score_name == "mean canonical correlation"
    assert cca.transform_x(X).shape == (500, 4) == cca.transform_y(Y).shape


@pytest.mark.parametrize("method", ["procrustes", "ridge", "cca"])
def test_unrelated_layers_score_near_zero_held_out(method):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    fit = align_pair(X, Y, method)
    assert fit.score < 0.15
    assert fit.train_score > fit.score  # fitting noise shows up only on the training rows


def test_rows_of_one_group_stay_on_one_side():
    groups = [f"img{i // 10}" for i in range(200)]
    train, test = split_rows(200, 0.25, seed=3, groups=groups)
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert len(test) == 50 and len(train) + len(test) == 200
    fit = align_pair(*rotated_pair(200)[:2], "ridge", groups=groups)
    assert (fit.n_train, fit.n_test) == (150, 50)


@pytest.mark.parametrize("args, needle", [
    (dict(method="svd"), "unknown alignment method 'svd'"),
    (dict(method="cca", n_components=9), "n_components=9"),
    (dict(method="ridge", test_fraction=1.5), "test fraction"),
])
def test_bad_arguments_are_user_errors(args, needle):
    X, Y, _ = rotated_pair(100)
    with pytest.raises(ZooError, match=needle):
        align_pair(X, Y, **args)


def test_procrustes_needs_room_in_y():
    rng = np.random.default_rng(0)
    with pytest.raises(ZooError, match="dims\\(X\\) <= dims\\(Y\\)"):
        align_pair(rng.normal(size=(50, 6)), rng.normal(size=(50, 3)), "procrustes")
