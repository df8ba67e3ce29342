"""The default Nystrom cut against the exact dense cut on inputs shaped like trained features:
smooth low-dimensional manifolds in many dimensions, heavy tails, near-duplicates, imbalance."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from zoo.align import exact_ncut, ncut, subspace_cosines
from zoo.align.nystrom import DroppedDirectionsWarning
from zoo.errors import ZooError


def manifold(n: int = 1000, dims: int = 2, ambient: int = 384, seed: int = 0
             ) -> tuple[np.ndarray, None]:
    """A smooth `dims`-dimensional manifold in `ambient` dimensions (random Fourier map): its
    Gaussian kernel is numerically low-rank, which is what defeated the float32 cut."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(-1, 1, (n, dims))
    return np.sin(latent @ rng.normal(size=(dims, ambient))
                  + rng.uniform(0, 2 * np.pi, ambient)).astype(np.float32), None


def heavy_tailed(n: int = 600, d: int = 384) -> tuple[np.ndarray, None]:
    """Student-t(3) features: a few rows far out, so some eigenvectors sit on outliers."""
    return np.random.default_rng(1).standard_t(3, size=(n, d)).astype(np.float32), None


def near_duplicates(n: int = 600, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """8 well-separated groups of 5 rows, each row repeated with 1e-4 jitter."""
    rng = np.random.default_rng(2)
    group = np.repeat(np.arange(8), 5)
    base = rng.normal(size=(8, d))[group] * 3 + rng.normal(size=(40, d))
    row = rng.integers(0, 40, n)
    return (base[row] + 1e-4 * rng.normal(size=(n, d))).astype(np.float32), group[row]


def imbalanced(n: int = 600, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One cluster of n - 12 rows and three of 4 rows each."""
    rng = np.random.default_rng(3)
    sizes = [n - 12, 4, 4, 4]
    centres = rng.normal(size=(4, d)) * 2.0
    X = np.concatenate([c + rng.normal(size=(s, d)) for c, s in zip(centres, sizes)])
    return X.astype(np.float32), np.repeat(np.arange(4), sizes)


INPUTS = {"2d-manifold-in-384d": manifold, "student-t3": heavy_tailed,
          "near-duplicates": near_duplicates, "imbalanced": imbalanced}
N_EIG = 20  # the default


def clusters(vecs: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=0).fit_predict(vecs)


@pytest.mark.parametrize("name", INPUTS)
def test_default_cut_agrees_with_the_exact_cut(name):
    """At the defaults (every node a landmark below 2048 rows): top-10 mean cosine >= 0.99 and
    k-means on the eigenvectors within 0.01 ARI of the exact cut's (against the planted labels
    where there are some, else against the exact cut's own partition into 10). On the manifold
    the float32 cut kept 22 of the directions float64 resolves and its partition had ARI
    0.84-0.89 against the exact one."""
    from sklearn.metrics import adjusted_rand_score as ari

    X, labels = INPUTS[name]()
    exact = exact_ncut(X, n_eig=N_EIG)
    cut = ncut(X, n_eig=N_EIG)
    assert subspace_cosines(exact.eigvecs, cut.eigvecs).mean() >= 0.99
    if labels is None:
        assert ari(clusters(exact.eigvecs, N_EIG), clusters(cut.eigvecs, N_EIG)) >= 0.99
    else:
        k = len(np.unique(labels))
        assert abs(ari(labels, clusters(cut.eigvecs, k))
                   - ari(labels, clusters(exact.eigvecs, k))) <= 0.01
    assert (cut.note != "") == (cut.precision == "float64")


@pytest.mark.parametrize("name", INPUTS)
def test_default_precision_costs_nothing_against_float64(name):
    """A quarter of the nodes as landmarks: whatever precision "auto" picks, its top-10 space is
    float64's at the same landmarks (what remains against the exact cut is the landmarks')."""
    X, _ = INPUTS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedDirectionsWarning)
        reference = ncut(X, n_eig=N_EIG, n_landmarks=len(X) // 4, precision="float64")
    cut = ncut(X, n_eig=N_EIG, n_landmarks=len(X) // 4)
    assert subspace_cosines(reference.eigvecs, cut.eigvecs).min() >= 0.999


def test_more_landmarks_do_not_lower_the_resolution():
    """The pivot cut-off does not grow with the landmark count (up to the default), so more
    landmarks never resolve less: the same threshold at every count, and the cut at 600
    landmarks is at least as close to the exact cut as at 75 (the old m eps s_max cut-off went
    from 30 to 20 directions between 256 and 2048 landmarks on this kind of input)."""
    import torch

    from zoo.align.nystrom import _cutoff

    X, _ = manifold(600)
    A = torch.ones(3, 3, dtype=torch.float64)
    for precision in ("float32", "float64"):
        assert len({_cutoff(precision, len(X), m, A) for m in (75, 150, 300, 600)}) == 1
    exact = exact_ncut(X, n_eig=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedDirectionsWarning)
        for precision in ("float32", "float64"):
            cosines = [subspace_cosines(exact.eigvecs, ncut(X, n_eig=4, n_landmarks=m,
                                                            precision=precision).eigvecs).min()
                       for m in (75, 600)]
            assert cosines[1] >= cosines[0] - np.finfo(np.float32).eps, (precision, cosines)


def test_auto_falls_back_to_float64_with_a_note_and_matches_the_exact_cut():
    """More eigenvectors than float32 resolves on a smooth manifold: float32 refuses with the
    way out, "auto" computes in float64 and says so."""
    X, _ = manifold(600)
    with pytest.raises(ZooError, match=r"resolves only \d+ directions in float32 .*"
                                       r"precision='auto' or 'float64' \(`zoo cut --precision`\)"):
        ncut(X, n_eig=60, precision="float32")
    cut = ncut(X, n_eig=60)
    assert cut.precision == "float64"
    assert "computed in float64" in cut.note
    exact = exact_ncut(X, n_eig=60)
    assert subspace_cosines(exact.eigvecs, cut.eigvecs).mean() >= 0.99


def test_auto_keeps_float32_where_it_resolves_the_cut():
    rng = np.random.default_rng(4)
    X = (rng.normal(size=(4, 16))[rng.integers(0, 4, 500)] * 3
         + rng.normal(size=(500, 16))).astype(np.float32)
    cut = ncut(X, n_eig=4, n_landmarks=100)
    assert (cut.precision, cut.note) == ("float32", "")
    forced = ncut(X, n_eig=4, n_landmarks=100, precision="float32")
    np.testing.assert_array_equal(cut.eigvecs, forced.eigvecs)


def test_cli_cut_has_a_precision_option():
    from tests.conftest import assert_user_error, run_zoo

    assert "--precision" in run_zoo("cut", "--help").stdout
    assert_user_error(run_zoo("cut", "toy", "--precision", "float16"),
                      "precision must be one of auto, float32, float64, got 'float16'")


def test_zoo_cut_runs_in_the_precision_asked_and_records_it(tmp_path):
    import json

    from tests.conftest import run_zoo

    out = tmp_path / "cut"
    result = run_zoo("cut", "toy/cnn", "--random-init", "--data", "synthetic:4", "--layers",
                     "stage2", "--n-eig", "4", "--landmarks", "60", "--precision", "float64",
                     "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["precision"], summary["precision_note"]) == ("float64", "")
