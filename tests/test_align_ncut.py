"""Nystrom normalized cut against the exact eigenvectors, on small graphs with known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from zoo.align import estimate_sigma, exact_ncut, ncut, subspace_cosines
from zoo.align.nystrom import DroppedDirectionsWarning
from zoo.errors import ZooError


def blobs(n: int, k: int, d: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`k` Gaussian clusters (unit noise) with centres `spread` apart on average."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * spread
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def tight_clusters(n: int = 400, k: int = 12, d: int = 32) -> np.ndarray:
    """`k` clusters of width 1e-3 (centres ~1 apart): landmarks within a cluster near-duplicate."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(k, d))[rng.integers(0, k, n)]
            + 1e-3 * rng.normal(size=(n, d))).astype(np.float32)


def manifold(dims: int, n: int = 400, ambient: int = 768) -> np.ndarray:
    """A smooth `dims`-dimensional manifold embedded in 768 dimensions (random Fourier map)."""
    rng = np.random.default_rng(dims)
    latent = rng.uniform(-1, 1, (n, dims))
    return np.sin(latent @ rng.normal(size=(dims, ambient))
                  + rng.uniform(0, 2 * np.pi, ambient)).astype(np.float32)


def duplicated(n: int = 360, d: int = 16) -> np.ndarray:
    """120 distinct rows, each present three times."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(n // 3, d))
    return np.concatenate([base, base, base])[rng.permutation(n)].astype(np.float32)


def vit_tokens(images: int = 3) -> np.ndarray:
    """Patch and class tokens after the last block of a random-init timm ViT-Tiny on
    synthetic shape images (591 tokens x 192 for 3 images)."""
    import timm
    import torch

    from zoo.data.sources import synthetic_images

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    pixels, _ = synthetic_images(images, "shapes", 224)
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        tokens = model.blocks(model._pos_embed(model.patch_embed(x)))
    return tokens.reshape(-1, tokens.shape[-1]).numpy()


ILL_CONDITIONED = {
    "tight-clusters": tight_clusters,
    "2d-manifold-in-768d": lambda: manifold(2),
    "4d-manifold-in-768d": lambda: manifold(4),
    "duplicated-points": duplicated,
    "random-init-vit-tokens": vit_tokens,
    "well-conditioned-blobs": lambda: blobs(240, 3, 6, 1.0)[0],
}
EXACT_EIGVALS = 1e-8  # float64 rounding is ~1e-15 here; float32 anywhere in the chain is ~1e-7
F32 = float(np.finfo(np.float32).eps)  # eigenvectors are float64 inside, returned as float32


@pytest.mark.parametrize("name", ILL_CONDITIONED)
def test_nystrom_is_exact_with_all_nodes_and_close_with_a_quarter(name):
    """All nodes as landmarks reproduce the exact cut (in float64 to float64 rounding, in
    float32 to its resolution); a quarter of them keep the top-10 space (mean principal-angle
    cosine >= 0.999, worst >= 0.99) in both precisions, on inputs whose landmark kernel is
    ill-conditioned (the float32 form of the extension failed both on most of these)."""
    X = ILL_CONDITIONED[name]()
    exact = exact_ncut(X, n_eig=10)
    assert exact.eigvals[0] == pytest.approx(1.0)  # D^-1/2 W D^-1/2 always has eigenvalue 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedDirectionsWarning)  # duplicates are dropped
        full = ncut(X, n_eig=10, n_landmarks=len(X), precision="float64")
        full32 = ncut(X, n_eig=10, n_landmarks=len(X))
        quarters = [ncut(X, n_eig=10, n_landmarks=len(X) // 4, precision=p)
                    for p in ("float32", "float64")]
    assert sorted(full.landmarks.tolist()) == list(range(len(X)))
    assert full.sigma == exact.sigma
    np.testing.assert_allclose(full.eigvals, exact.eigvals, rtol=0, atol=EXACT_EIGVALS)
    # each top-10 space has an eigengap >= 4e-4: float64 error / gap keeps the angles < 1e-9
    assert subspace_cosines(exact.eigvecs, full.eigvecs).min() > 1 - 1e-9
    # float32: Phi carries a relative error <= ~sqrt(eps32 / m) (module doc), which bounds the
    # eigenvalue error (all |eigenvalues| <= 1); angles are that error over the gap (>= 4e-4)
    bound = np.sqrt(F32 / len(X))
    np.testing.assert_allclose(full32.eigvals, exact.eigvals, rtol=0, atol=bound)
    assert subspace_cosines(exact.eigvecs, full32.eigvecs).min() > 1 - (bound / 4e-4) ** 2
    for quarter in quarters:
        cosines = subspace_cosines(exact.eigvecs, quarter.eigvecs)
        assert cosines.mean() >= 0.999
        assert cosines.min() >= 0.99


def test_dropped_landmark_directions_are_announced_in_float64_and_counted_in_both():
    X = duplicated()
    with pytest.warns(DroppedDirectionsWarning,
                      match=r"^240 of 360 Nystrom landmark directions .* fewer landmarks "
                            r"\(about 120\) .* smaller sigma"):
        assert ncut(X, n_eig=4, n_landmarks=len(X), precision="float64").directions == 120
    with warnings.catch_warnings():
        warnings.simplefilter("error", DroppedDirectionsWarning)
        # distinct landmarks: nothing dropped, no warning
        assert ncut(X, n_eig=4, n_landmarks=100, precision="float64").directions == 100
        # float32 drops below its own resolution by design: counted, not announced
        assert ncut(X, n_eig=4, n_landmarks=len(X)).directions == 120


def test_exact_top_eigenvector_is_sqrt_degree():
    X, _ = blobs(150, 2, 4, 1.0)
    res = exact_ncut(X, n_eig=1, sigma=2.0)
    d2 = ((X[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    degree = np.exp(-d2 / 8.0).sum(1)
    np.testing.assert_allclose(res.eigvecs[:, 0], np.sqrt(degree / degree.sum()), atol=1e-8)


@pytest.mark.parametrize("affinity", ["rbf", "cosine"])
def test_nystrom_extension_matches_exact_eigenvectors(affinity):
    """A fifth of the nodes as landmarks: the other nodes' entries come from the extension."""
    X, _ = blobs(600, 4, 8, 0.8, seed=1)
    exact = exact_ncut(X, n_eig=6, affinity=affinity)
    approx = ncut(X, n_eig=6, n_landmarks=120, affinity=affinity)
    assert subspace_cosines(exact.eigvecs, approx.eigvecs).min() > 0.999
    per_vector = np.abs((exact.eigvecs * approx.eigvecs).sum(0))
    assert per_vector[:4].min() > 0.999  # leading eigenvectors individually, not just the span
    np.testing.assert_allclose(approx.eigvals, exact.eigvals, rtol=5e-3)


def test_accuracy_improves_with_landmarks():
    X, _ = blobs(800, 5, 16, 0.5, seed=2)
    exact = exact_ncut(X, n_eig=5)
    few, many = (subspace_cosines(exact.eigvecs, ncut(X, 5, m).eigvecs).mean() for m in (20, 200))
    assert few < many
    assert many > 0.995


def test_planted_clusters_are_recovered():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from zoo.align.bias import explained_share

    X, labels = blobs(1200, 4, 32, 2.0, seed=3)
    res = ncut(X, n_eig=4, n_landmarks=100)
    found = KMeans(4, n_init=10, random_state=0).fit_predict(res.eigvecs)
    assert adjusted_rand_score(labels, found) == pytest.approx(1.0)
    # most of the eigenvectors' variance is between clusters: they encode the partition
    assert explained_share(res.eigvecs[:, 1:], labels) > 0.8


def test_farthest_point_landmarks_reach_a_tiny_far_cluster():
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(size=(997, 5)), rng.normal(size=(3, 5)) + 50]).astype(np.float32)
    res = ncut(X, n_eig=2, n_landmarks=10, seed=0)
    assert np.isin([997, 998, 999], res.landmarks).any()
    assert len(set(res.landmarks.tolist())) == 10


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_seeded_and_chunk_independent(precision):
    X, _ = blobs(500, 3, 8, 1.0, seed=5)
    a = ncut(X, n_eig=4, n_landmarks=60, seed=7, precision=precision)
    b = ncut(X, n_eig=4, n_landmarks=60, seed=7, chunk_rows=64, precision=precision)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    # float64: chunks only reorder float64 sums, so the float32 results differ by at most one
    # rounding; float32: the per-chunk sums are float32, within the module's bound sqrt(eps/m)
    tol = F32 if precision == "float64" else np.sqrt(F32 / 60)
    np.testing.assert_allclose(a.eigvecs, b.eigvecs, rtol=0, atol=tol)
    c = ncut(X, n_eig=4, n_landmarks=60, seed=8, precision=precision)
    assert not np.array_equal(a.landmarks, c.landmarks)


def test_sigma_is_returned_and_can_be_fixed():
    X, _ = blobs(300, 3, 8, 1.0)
    auto = ncut(X, n_eig=3, n_landmarks=50)
    assert auto.sigma == pytest.approx(estimate_sigma(X))
    fixed = ncut(X, n_eig=3, n_landmarks=50, sigma=2.5)
    assert fixed.sigma == 2.5
    # doubling every feature doubles the median bandwidth and leaves the graph unchanged
    scaled = ncut(2 * X, n_eig=3, n_landmarks=50)
    assert scaled.sigma == pytest.approx(2 * auto.sigma, rel=F32)
    np.testing.assert_allclose(scaled.eigvecs, auto.eigvecs, rtol=0, atol=F32)


def test_cosine_affinity_ignores_row_norms():
    X, _ = blobs(300, 3, 8, 1.0)
    scales = np.random.default_rng(0).uniform(0.5, 3.0, (300, 1)).astype(np.float32)
    a = ncut(X, n_eig=3, n_landmarks=40, affinity="cosine")
    b = ncut(X * scales, n_eig=3, n_landmarks=40, affinity="cosine")
    np.testing.assert_allclose(a.eigvecs, b.eigvecs, atol=1e-4)


def test_accepts_tensors_and_memmaps(tmp_path):
    import torch

    X, _ = blobs(200, 2, 4, 1.0)
    path = tmp_path / "x.npy"
    np.save(path, X)
    ref = ncut(X, n_eig=3, n_landmarks=30)
    for source in (torch.from_numpy(X), np.load(path, mmap_mode="r")):
        np.testing.assert_allclose(ncut(source, n_eig=3, n_landmarks=30).eigvecs, ref.eigvecs,
                                   rtol=0, atol=F32)


@pytest.mark.parametrize("kwargs, needle", [
    ({"precision": "float16"}, "precision must be one of auto, float32, float64"),
    ({"n_eig": 10, "n_landmarks": 5}, "below n_eig"),
    ({"affinity": "manhattan"}, "unknown affinity 'manhattan'"),
    ({"sigma": 0.0}, "sigma must be > 0"),
    ({"n_eig": 0}, "n_eig=0"),
])
def test_bad_arguments_are_user_errors(kwargs, needle):
    X, _ = blobs(50, 2, 3, 1.0)
    with pytest.raises(ZooError, match=needle):
        ncut(X, **kwargs)


def test_identical_rows_have_no_bandwidth():
    with pytest.raises(ZooError, match="identical"):
        ncut(np.ones((40, 3), np.float32), n_eig=2, n_landmarks=10)


def _krylov_against_graph_pass(monkeypatch: pytest.MonkeyPatch, span: float) -> None:
    """The default float32 cut (block Krylov on the held K; KRYLOV_SPAN = `span`) against the
    same cut through the G pass alone, on 10 clusters with 1024 landmarks (r >= KRYLOV_MIN)."""
    from zoo.align import nystrom

    X, _ = blobs(3000, 10, 64, 0.6)
    graph = nystrom._graph
    monkeypatch.setattr(nystrom, "KRYLOV_MIN", 10**9)
    reference = ncut(X, n_eig=20, n_landmarks=1024, precision="float32")
    monkeypatch.setattr(nystrom, "KRYLOV_MIN", 512)  # the test's r = 1024
    monkeypatch.setattr(nystrom, "KRYLOV_SPAN", span)
    calls, skews = [], []
    monkeypatch.setattr(nystrom, "_graph", lambda *a: calls.append(1) or graph(*a))
    spectral_norm = nystrom._spectral_norm
    monkeypatch.setattr(nystrom, "_spectral_norm",
                        lambda m: skews.append(spectral_norm(m)) or skews[-1])
    krylov = ncut(X, n_eig=20, n_landmarks=1024, precision="float32")
    r = krylov.directions
    assert r >= 512 and r == reference.directions
    if span < 0.1:  # one Krylov step cannot reach the tolerance: the G pass gives the result
        assert calls and np.array_equal(krylov.eigvecs, reference.eigvecs)
        return
    assert not calls, "the G pass ran"
    # Ritz pairs with residuals <= tol (the stopping rule: sqrt(r) eps32, or twice the
    # projected matrix's antisymmetric part where the float32 applications round more) are
    # exact for a matrix within tol of C; C applied in float32 and C from the float64 G differ
    # by about as much: eigenvalues within 2 tol, and the 10 cluster directions within a
    # principal angle 2 tol / gap (the gap to the bulk), less float32 storage of the vectors.
    tol = max(np.sqrt(r) * F32, 2 * skews[-1])
    np.testing.assert_allclose(krylov.eigvals, reference.eigvals, rtol=0, atol=2 * tol)
    gap = reference.eigvals[9] - reference.eigvals[10]
    bound = np.sqrt(1 - (2 * tol / gap) ** 2) - 10 * F32
    assert subspace_cosines(krylov.eigvecs[:, :10], reference.eigvecs[:, :10]).min() >= bound


def test_krylov_top_eigenpairs_equal_the_graph_pass(monkeypatch):
    _krylov_against_graph_pass(monkeypatch, span=0.4)


def test_krylov_that_does_not_converge_falls_back_to_the_graph_pass(monkeypatch):
    _krylov_against_graph_pass(monkeypatch, span=0.05)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_landmarks_in_their_own_order_equal_the_pivoted_factor(monkeypatch, precision):
    """Where every landmark is resolved in its own order, the unpivoted Cholesky is used; it
    spans the same landmarks as the pivoted one, so the cut is the same to rounding."""
    from zoo.align import nystrom

    X, _ = blobs(600, 4, 64, 1.0)  # 64-d: float32 resolves every landmark
    used = []
    in_order = nystrom._resolved_in_order
    monkeypatch.setattr(nystrom, "_resolved_in_order", lambda *a: used.append(1) or in_order(*a))
    fast = ncut(X, n_eig=6, n_landmarks=150, precision=precision)
    assert used and fast.directions == 150
    monkeypatch.setattr(nystrom, "_resolved_in_order", lambda *a: None)
    pivoted = ncut(X, n_eig=6, n_landmarks=150, precision=precision)
    assert pivoted.directions == 150
    # two factorisations of one float64 A: eigenvalues agree to its rounding (EXACT_EIGVALS);
    # in float32, K's rounding reaches C through differently ordered factors (sqrt(eps32 / m),
    # the module's bound on Phi)
    tol = EXACT_EIGVALS if precision == "float64" else np.sqrt(F32 / 150)
    np.testing.assert_allclose(fast.eigvals, pivoted.eigvals, rtol=0, atol=tol)
    assert subspace_cosines(fast.eigvecs, pivoted.eigvecs).min() >= 1 - tol


def test_rows_past_the_memory_budget_fit_the_graph_on_a_seeded_sample(monkeypatch):
    """Where K for every row does not fit CACHE_BYTES, float32 fits the landmark graph on a
    seeded sample of rows whose K does and extends the eigenvectors to every row: the cut
    stays within the accuracy rule of the one fitted on all rows; float64 stays exact."""
    from zoo.align import nystrom

    X, labels = blobs(6000, 6, 32, 1.0)
    full = ncut(X, n_eig=6, n_landmarks=200, precision="float32")
    monkeypatch.setattr(nystrom, "CACHE_BYTES", 2000 * 200 * 4)  # K for 2000 rows
    sampled = ncut(X, n_eig=6, n_landmarks=200, precision="float32")
    again = ncut(X, n_eig=6, n_landmarks=200, precision="float32")
    assert "fitted on 2,000 of 6,000 rows" in sampled.note and not full.note
    assert np.array_equal(sampled.eigvecs, again.eigvecs)  # the sample is seeded
    assert sampled.eigvecs.shape == (6000, 6)
    cosines = subspace_cosines(full.eigvecs, sampled.eigvecs)
    assert cosines.mean() >= 0.999 and cosines.min() >= 0.99
    exact64 = ncut(X, n_eig=6, n_landmarks=200, precision="float64")
    assert not exact64.note  # float64 reads every row, within the budget or not


@pytest.mark.parametrize("error_rows", [2048, 150])
def test_sampling_error_matches_the_spread_of_sampled_sums(monkeypatch, error_rows):
    """`_sampling_error` (from one sample, or a subsample of it) against the spread of C v over
    many seeded samples drawn without replacement: E ||C_s v - C v||^2 is what it estimates."""
    import torch

    from zoo.align import nystrom

    monkeypatch.setattr(nystrom, "ERROR_ROWS", error_rows)
    rng = np.random.default_rng(0)
    population, rows, r = 3000, 600, 24
    K = torch.from_numpy(rng.gamma(2.0, size=(population, r)).astype(np.float32))
    degrees = torch.from_numpy(rng.uniform(5.0, 20.0, population))
    R = torch.from_numpy(np.triu(rng.normal(size=(r, r))) + 4 * np.eye(r))
    basis = nystrom.LandmarkBasis(np.arange(r), torch.linalg.inv(R).T, "float32", "")  # L = R^-T
    phi = (K.double() @ R) / degrees.sqrt()[:, None]
    vecs = torch.linalg.eigh(phi.T @ phi)[1][:, -3:]  # C's top eigenvectors: fixed directions
    exact = phi.T @ (phi @ vecs)
    draws, squared, estimated = 400, [], []
    for draw in range(draws):
        sample = torch.from_numpy(np.sort(rng.choice(population, rows, replace=False)))
        scaled = degrees[sample] * rows / population  # the sample's sum stands for all rows'
        summed = (phi[sample].T @ (phi[sample] @ vecs)) * population / rows
        squared.append(((summed - exact) ** 2).sum(0))
        error = nystrom._sampling_error(K[sample], scaled, basis, population, seed=draw)
        estimated.append(error(vecs, summed.norm(dim=0)) ** 2)
    ratio = torch.stack(estimated).mean(0) / torch.stack(squared).mean(0)
    # each mean is over 400 draws of a sum of 24 squared, near-Gaussian terms: relative
    # standard error about sqrt(2 / 24 / 400) = 1.4% each; 10% is seven of them
    np.testing.assert_allclose(ratio.numpy(), 1.0, rtol=0.1)


def test_sampled_krylov_stops_at_the_sampling_error(monkeypatch):
    """A sampled fit's Krylov solve stops at SAMPLED_TOLERANCE of the sampling error instead of
    float32's floor: fewer steps, and the cluster eigenvectors within the angle that residual
    allows (2 x residual / gap) of the ones solved to the floor."""
    from zoo.align import nystrom

    X, _ = blobs(6000, 10, 64, 0.6)
    monkeypatch.setattr(nystrom, "KRYLOV_MIN", 512)
    monkeypatch.setattr(nystrom, "CACHE_BYTES", 2500 * 1024 * 4)  # K for 2,500 rows
    runs, errors = {}, []
    sampling_error = nystrom._sampling_error

    def recorded(*args):
        error = sampling_error(*args)
        return lambda vecs, vals: errors.append(error(vecs, vals)) or errors[-1]

    monkeypatch.setattr(nystrom, "_sampling_error", recorded)
    steps: list[str] = []
    for tolerance in (0.0, 0.25):
        monkeypatch.setattr(nystrom, "SAMPLED_TOLERANCE", tolerance)
        steps.clear()
        res = ncut(X, n_eig=20, n_landmarks=1024, precision="float32",
                   progress=lambda task, done, total: steps.append(task))
        assert "fitted on 2,500 of 6,000 rows" in res.note and res.directions >= 512
        runs[tolerance] = (res, steps.count("graph"))
    (floor, floor_steps), (sampled, sampled_steps) = runs[0.0], runs[0.25]
    assert sampled_steps < floor_steps
    # residual_j <= 0.25 SE_j: each Ritz value within that of the floor's (which is within
    # float32's floor of C's), and the cluster space within sin <= ||residuals||_F / gap; the
    # trivial eigenvector (Phi^T 1, C's fixed point) starts the basis and is exact in both
    limits = 0.25 * errors[-1].numpy()
    tol = np.sqrt(sampled.directions) * F32
    assert np.all(np.abs(sampled.eigvals - floor.eigvals) <= limits + 2 * tol)
    gap = floor.eigvals[9] - floor.eigvals[10]
    sine = np.sqrt((limits[1:10] ** 2).sum()) / gap
    cosines = subspace_cosines(sampled.eigvecs[:, :10], floor.eigvecs[:, :10])
    assert cosines.min() >= np.sqrt(1 - sine ** 2) - 10 * F32


def test_signs_follow_the_first_largest_magnitude_entry():
    """Each column is flipped so its largest-magnitude entry is positive; on a tie between a
    positive and a negative extreme, the first in row order decides."""
    from zoo.align.nystrom import _fix_signs

    vecs = np.array([[1, -2, 0, 0.5], [-1, 2, -3, -0.25], [0.5, 0, 3, 0]], np.float32)
    expected = np.array([[1, 2, 0, 0.5], [-1, -2, 3, -0.25], [0.5, 0, -3, 0]], np.float32)
    out = _fix_signs(vecs)
    assert out is vecs  # in place
    np.testing.assert_array_equal(out, expected)


def test_covering_distances_equal_the_direct_ones():
    """The FPS covering pass's squared distance to the nearest landmark, from one product of
    augmented factors per block, against the direct differences: equal to float32 rounding of
    the expanded square (a few eps32 times the largest squared norm involved)."""
    from zoo.align.landmarks import _nearest_distance

    rng = np.random.default_rng(0)
    z = (rng.normal(size=(3000, 16)) * rng.uniform(0.1, 10, 16)).astype(np.float32)
    marks = z[rng.choice(3000, 70, replace=False)] + 0.5
    direct = ((z[:, None, :].astype(np.float64) - marks[None]) ** 2).sum(2).min(1)
    blocked = _nearest_distance(z, marks, "cpu", chunk=128)  # many blocks, one partial
    scale = (z.astype(np.float64) ** 2).sum(1).max() + (marks.astype(np.float64) ** 2).sum(1).max()
    np.testing.assert_allclose(blocked, direct, rtol=0, atol=32 * F32 * scale)
