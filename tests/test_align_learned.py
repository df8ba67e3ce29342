"""Learned linear channel alignment: fits a planted target, keeps the regularisers honest, stops
early, and its maps round-trip through files."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.align import AlignConfig, LinearMap, load_maps, save_maps, train_alignment
from zoo.align.learned import centring_loss, covariance_loss, eigen_gap
from zoo.errors import DataError, ZooError

CONFIG = AlignConfig(dim=6, tokens=48, n_eig=4, epochs=150, patience=20)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread hand-offs would cost more than the arithmetic on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted(n: int = 48, tokens: int = 12, latent: int = 3, seed: int = 0):
    """Two layers that mix one latent per token differently; the target reads the image mean."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, tokens, latent))
    a = z @ rng.normal(size=(latent, 10)) + 0.05 * rng.normal(size=(n, tokens, 10)) + 2.0
    b = z @ rng.normal(size=(latent, 14)) + 0.05 * rng.normal(size=(n, tokens, 14))
    target = z.mean(1) @ rng.normal(size=(latent, 20))
    return {"m:a": a.astype(np.float32), "m:b": b.astype(np.float32)}, target


def test_predicts_a_planted_target_on_held_out_images():
    feats, target = planted()
    run = train_alignment(feats, target, CONFIG)
    assert run.val_r2 > 0.95
    assert run.history[0]["val_r2"] < 0.5  # it learned, it did not start there
    for key, lin in run.maps.items():
        assert lin.weight.shape == (feats[key].shape[-1], 6)
        assert lin.apply(feats[key]).shape == feats[key].shape[:2] + (6,)


def _best(feats, target, **weights) -> dict[str, float]:
    run = train_alignment(feats, target, AlignConfig(**{**CONFIG.__dict__, **weights}))
    return run.history[run.best_epoch - 1]


def test_each_regulariser_pulls_its_term_down():
    feats, target = planted()
    free = _best(feats, target, eigen_weight=0.0, cov_weight=0.0)
    assert _best(feats, target, eigen_weight=10.0, cov_weight=0.0)["eigen"] < 0.1 * free["eigen"]
    assert _best(feats, target, eigen_weight=0.0, cov_weight=10.0)["cov"] < 0.5 * free["cov"]


def test_aligned_features_are_zero_centred():
    feats, target = planted()
    run = train_alignment(feats, target, CONFIG)
    for key, lin in run.maps.items():
        aligned = lin.apply(feats[key]).reshape(-1, 6)
        # a small fraction of the features' size, despite layer a's offset of 2 per channel
        assert np.linalg.norm(aligned.mean(0)) ** 2 < 0.05 * (aligned ** 2).sum(1).mean()


def test_noise_target_stops_early_at_a_poor_fit():
    feats, _ = planted()
    noise = np.random.default_rng(9).normal(size=(48, 5))
    run = train_alignment(feats, noise, AlignConfig(**{**CONFIG.__dict__, "epochs": 400}))
    assert len(run.history) < 400
    assert len(run.history) == run.best_epoch + 20  # stopped `patience` epochs after the best
    assert run.val_r2 < 0.2


def test_training_is_seeded():
    feats, target = planted()
    short = AlignConfig(**{**CONFIG.__dict__, "epochs": 20})
    a, b = (train_alignment(feats, target, short) for _ in range(2))
    np.testing.assert_array_equal(a.maps["m:a"].weight, b.maps["m:a"].weight)


def test_regulariser_values_on_known_inputs():
    import torch

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(64, 5)))
    before = torch.linalg.eigh(_graph(x))[1][:, -3:]
    assert float(eigen_gap(x, before)) == pytest.approx(0.0, abs=1e-10)  # unchanged graph
    assert float(eigen_gap(3.0 * x, before)) == pytest.approx(0.0, abs=1e-10)  # scale-free
    shuffled = x[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    assert float(eigen_gap(shuffled, before)) > 0.05
    assert float(centring_loss(x - x.mean(0))) == pytest.approx(0.0, abs=1e-12)
    assert float(centring_loss(torch.ones(10, 3))) == pytest.approx(1.0)
    mixed = torch.cat([x[:, :1], x[:, :1]], 1)  # two identical channels: correlation 1
    assert float(covariance_loss(mixed)) == pytest.approx(1.0)


def _graph(x):
    from zoo.align.learned import _normalised_affinity

    return _normalised_affinity(x)


def test_inputs_must_pair_with_the_target():
    feats, target = planted()
    with pytest.raises(ZooError, match="with 47 images"):
        train_alignment(feats, target[:47], CONFIG)


def test_maps_round_trip_through_files(tmp_path):
    rng = np.random.default_rng(0)
    maps = {"toy/cnn:stage1": LinearMap(rng.normal(size=(8, 4)).astype(np.float32),
                                        rng.normal(size=4).astype(np.float32))}
    save_maps(tmp_path, maps, {"target": "brain.csv"})
    back = load_maps(tmp_path)
    np.testing.assert_array_equal(back["toy/cnn:stage1"].weight, maps["toy/cnn:stage1"].weight)
    np.testing.assert_array_equal(back["toy/cnn:stage1"].bias, maps["toy/cnn:stage1"].bias)
    with pytest.raises(DataError, match="maps.json"):
        load_maps(tmp_path / "nowhere")
    with pytest.raises(DataError, match="expects 8 channels"):
        back["toy/cnn:stage1"].apply(np.zeros((2, 5), np.float32))


def test_targets_are_paired_by_sample_id(tmp_path):
    from zoo.align.target import load_target, target_rows

    (tmp_path / "t.csv").write_text("v1,sample_id,v2\n1,b,2\n3,a,4\n")
    values, ids = load_target(tmp_path / "t.csv")
    np.testing.assert_array_equal(target_rows(values, ids, ["a", "b"]), [[3, 4], [1, 2]])
    np.save(tmp_path / "t.npy", np.array([[1.0], [2.0], [3.0]]))
    with pytest.raises(DataError, match="t.ids.txt"):
        load_target(tmp_path / "t.npy")
    (tmp_path / "t.ids.json").write_text('["c", "a", "b"]')
    values, ids = load_target(tmp_path / "t.npy")
    np.testing.assert_array_equal(target_rows(values, ids, ["a", "b"]), [[2.0], [3.0]])
    with pytest.raises(DataError, match="no row for 1 of 2"):
        target_rows(values, ids, ["a", "z"])
    (tmp_path / "dup.csv").write_text("sample_id,v\na,1\na,2\n")
    with pytest.raises(DataError, match="duplicate"):
        load_target(tmp_path / "dup.csv")
