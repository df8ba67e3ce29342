"""LCE: the normalised profile matrix, PCA against a direct computation, the KMeans elbow, axis
correlations with category counts and performance, and the plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr

from zoo.concepts import ProfileEntry, lce, lce_matrix, pca
from zoo.concepts.embedding import elbow, kmeans_elbow, read_performance
from zoo.errors import DataError, ZooError

CATEGORIES = {"cup": "object", "tree": "object", "red": "colour", "blue": "colour",
              "wheel": "part", "sky": "object"}


def _entries() -> list[ProfileEntry]:
    counts = {"m1": {"cup": 4, "tree": 2, "red": 3},
              "m2": {"cup": 1, "red": 5, "blue": 2},
              "m3": {"tree": 6, "wheel": 3, "sky": 0},
              "m4": {"cup": 2, "tree": 2, "wheel": 1, "blue": 4},
              "m5": {"red": 1, "blue": 1, "wheel": 2}}
    return [ProfileEntry(m, "layer4", c, CATEGORIES) for m, c in counts.items()]


def test_matrix_divides_counts_by_the_category_size_of_the_union():
    matrix, columns = lce_matrix(_entries())
    # sky has no unit anywhere: not a column. objects {cup, tree} /2, colours {blue, red} /2,
    # parts {wheel} /1; columns sorted by category then name.
    assert [(c.category, c.name) for c in columns] == [
        ("colour", "blue"), ("colour", "red"), ("object", "cup"), ("object", "tree"),
        ("part", "wheel")]
    expected = np.array([[0, 3, 4, 2, 0], [2, 5, 1, 0, 0], [0, 0, 0, 6, 3], [4, 0, 2, 2, 1],
                         [1, 1, 0, 0, 2]]) / np.array([2, 2, 2, 2, 1])
    np.testing.assert_array_equal(matrix, expected)


def test_pca_matches_a_direct_eigendecomposition_of_the_covariance():
    matrix, _ = lce_matrix(_entries())
    coords, explained, loadings = pca(matrix, 3)
    centred = matrix - matrix.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(matrix, rowvar=False))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    for a in range(3):
        v = vectors[:, a] * np.sign(vectors[np.abs(vectors[:, a]).argmax(), a])
        np.testing.assert_allclose(loadings[a], v, atol=1e-10)
        np.testing.assert_allclose(coords[:, a], centred @ v, atol=1e-10)
    np.testing.assert_allclose(explained, values[:3] / values.sum(), rtol=1e-10)
    assert coords.shape == (5, 3) and explained.sum() < 1.0


def test_pca_caps_axes_and_refuses_identical_profiles():
    coords, explained, _ = pca(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]]), 3)
    assert coords.shape == (2, 1) and explained[0] == pytest.approx(1.0)
    with pytest.raises(ZooError, match="at least 2 profiles that differ"):
        pca(np.ones((3, 2)), 3)


def test_kmeans_elbow_finds_three_separated_groups_and_is_seeded():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]])
    points = np.concatenate([c + rng.normal(0, 0.3, (4, 3)) for c in centres])
    k, clusters, inertias = kmeans_elbow(points, max_k=6, seed=0)
    assert k == 3 and len(inertias) == 6
    groups = clusters.reshape(3, 4)
    assert all(len(set(g)) == 1 for g in groups) and len({g[0] for g in groups}) == 3
    assert kmeans_elbow(points, max_k=6, seed=0)[1].tolist() == clusters.tolist()


def test_elbow_edge_cases():
    assert elbow([5.0, 1.0]) == 1  # too few ks to have an elbow
    assert elbow([3.0, 3.0, 3.0]) == 1  # flat curve
    assert elbow([100.0, 10.0, 9.0, 8.0]) == 2


def test_lce_explains_axes_by_category_counts_and_correlates_performance(tmp_path: Path):
    entries = _entries()
    table = tmp_path / "perf.csv"
    table.write_text("model,task,score\nm1,seg,0.5\nm2,seg,0.7\nm3,seg,0.2\nm4,seg,0.9\n"
                     "m5,seg,0.4\nm1,cls,0.3\nm2,cls,0.6\n")
    result = lce(entries, performance=read_performance(table), seed=0)
    assert result.coords.shape == (5, 3) and len(result.clusters) == 5
    object_counts = np.array([6, 1, 6, 4, 0])  # units on cup + tree (+ sky) per entry
    row = next(c for c in result.axis_categories if c.axis == 0 and c.variable == "object")
    r, p = pearsonr(result.coords[:, 0], object_counts)
    assert (row.r, row.p, row.n) == (pytest.approx(r), pytest.approx(p), 5)
    seg = next(c for c in result.performance if c.axis == 1 and c.variable == "seg")
    r, p = pearsonr(result.coords[:, 1], [0.5, 0.7, 0.2, 0.9, 0.4])
    assert (seg.r, seg.p) == (pytest.approx(r), pytest.approx(p))
    cls = [c for c in result.performance if c.variable == "cls"]
    assert len(cls) == 3 and all(np.isnan(c.r) and "2 entries" in c.note for c in cls)


def test_bad_performance_tables_and_inconsistent_categories_are_user_errors(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,score\nm1,0.5\n")
    with pytest.raises(DataError, match="task"):
        read_performance(bad)
    bad.write_text("model,task,score\nm1,seg,high\n")
    with pytest.raises(DataError, match="'high'"):
        read_performance(bad)
    clash = [ProfileEntry("a", "l", {"cup": 1}, {"cup": "object"}),
             ProfileEntry("b", "l", {"cup": 2}, {"cup": "part"})]
    with pytest.raises(DataError, match="cup"):
        lce_matrix(clash)


def test_plots_are_written_as_png(tmp_path: Path):
    from zoo.concepts import Concept, Dissection
    from zoo.concepts.plot import plot_lce, plot_profile

    result = lce(_entries(), seed=0)
    for dims in (2, 3):
        path = plot_lce(result, tmp_path / f"lce_{dims}d.png", dims=dims)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dissection = Dissection([Concept("cup", "object"), Concept("red", "colour")],
                            np.array([[0.2, 0.1], [0.01, 0.3], [0.0, 0.02]]), np.zeros(3))
    path = plot_profile(dissection, "toy:stage1", tmp_path / "profile.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers
