"""Segmentation by layer (oracle protocol), positional bias, aligned colours and the joint graph,
each on inputs with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.align import (
    aligned_colours,
    mask_labels,
    ncut,
    oracle_segmentation,
    positional_bias,
    shared_space,
    stack_blocks,
    to_rgb,
)
from zoo.align.segment import mask_to_grid
from zoo.errors import ZooError


def test_oracle_miou_known_answer():
    """Class 0: 80 pixels along e1 and 20 along e2; class 1: 100 along e2.

    Centre 0 = unit(0.8 e1 + 0.2 e2): its cosine is 0.970 to e1 and 0.243 to e2; centre 1 = e2.
    For thresholds in [0.25, 0.95] class 0 predicts its 80 e1 pixels (IoU 80/100) and class 1
    all 120 e2 pixels (IoU 100/120); lower thresholds let class 0 take everything (IoU 0.5).
    """
    e1, e2 = np.eye(4)[0], np.eye(4)[1]
    vecs = np.array([e1] * 80 + [e2] * 20 + [e2] * 100)
    labels = np.array([0] * 100 + [1] * 100)
    score = oracle_segmentation(vecs, labels)
    assert score.miou == pytest.approx((80 / 100 + 100 / 120) / 2)
    assert score.threshold == pytest.approx(0.25)
    assert score.class_iou == pytest.approx({0: 0.8, 1: 100 / 120})
    assert score.curve[score.thresholds < 0.24].max() == pytest.approx((0.5 + 100 / 120) / 2)


def test_oracle_ignores_unlabelled_pixels_and_scales():
    vecs = np.array([[1.0, 0.0]] * 10 + [[0.0, 5.0]] * 10 + [[7.0, 7.0]] * 5)
    labels = np.array([0] * 10 + [1] * 10 + [-1] * 5)
    assert oracle_segmentation(vecs, labels).miou == pytest.approx(1.0)


def _images_with_masks(n: int = 6, side: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, side, side), bool)
    for i in range(n):
        r, c = rng.integers(1, side - 4, 2)
        masks[i, r:r + 4, c:c + 3] = True
    fg, bg = rng.normal(size=16), rng.normal(size=16)
    feats = np.where(masks[..., None], fg, bg) + 0.3 * rng.normal(size=(n, side, side, 16))
    return feats.astype(np.float32), masks


def test_eigenvectors_of_figure_ground_features_segment_perfectly():
    feats, masks = _images_with_masks()
    res = ncut(feats.reshape(-1, 16), n_eig=4, n_landmarks=128)
    good = oracle_segmentation(res.eigvecs, masks.reshape(-1).astype(int))
    assert good.miou > 0.95
    shuffled = np.random.default_rng(0).permutation(masks.reshape(-1)).astype(int)
    assert oracle_segmentation(res.eigvecs, shuffled).miou < 0.7  # the protocol can fail


def test_masks_follow_the_models_resize_and_centre_crop():
    """A 40x60 mask, left third foreground; resized to 20x30 and centre-cropped to 20x20, the
    crop keeps original columns 10..49, so foreground fills its first quarter exactly."""
    mask = np.zeros((40, 60), bool)
    mask[:, :20] = True
    frac = mask_to_grid(mask, 20, (4, 4))
    np.testing.assert_allclose(frac[:, 0], 1.0, atol=0.15)
    np.testing.assert_allclose(frac[:, 1:], 0.0, atol=0.15)
    labels = mask_labels([mask, ~mask], 20, (4, 4))
    assert labels.shape == (2, 4, 4)
    np.testing.assert_array_equal(labels[0], np.tile([1, 0, 0, 0], (4, 1)))
    np.testing.assert_array_equal(labels[1], 1 - labels[0])


def test_positional_bias_known_answers():
    rng = np.random.default_rng(0)
    n, h, w = 40, 6, 6
    by_position = np.broadcast_to(rng.normal(size=(1, h, w, 3)), (n, h, w, 3))
    res = positional_bias(by_position)
    assert res.position_r2 == pytest.approx(1.0)
    assert res.position_chance == pytest.approx((h * w - 1) / (n * h * w - 1))
    noise = positional_bias(rng.normal(size=(n, h, w, 3)))
    assert noise.position_r2 < 2 * noise.position_chance
    left_right = np.broadcast_to(np.where(np.arange(w) < w // 2, 1.0, -1.0)[None, None, :, None],
                                 (n, h, w, 1))
    lr = positional_bias(left_right)
    assert lr.position_r2 == pytest.approx(1.0) and lr.border_r2 == pytest.approx(0.0)
    from zoo.align.bias import border_rings

    rings = np.broadcast_to(border_rings(h, w)[None, :, :, None].astype(float), (n, h, w, 1))
    assert positional_bias(rings).border_r2 == pytest.approx(1.0)


def test_positional_bias_with_content_labels():
    feats, masks = _images_with_masks()
    res = positional_bias(masks[..., None].astype(float), masks.astype(int))
    assert res.content_r2 == pytest.approx(1.0)
    assert res.position_r2 < 0.5
    with pytest.raises(ZooError, match="labels of"):
        positional_bias(feats[..., :2], masks[:2])


def test_aligned_colours_separate_clusters_and_are_seeded():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 200)
    X = (rng.normal(size=(3, 8))[labels] * 4 + rng.normal(size=(600, 8))).astype(np.float32)
    res = ncut(X, n_eig=4, n_landmarks=120)
    rgb = aligned_colours(res.eigvecs, res.landmarks)
    assert rgb.shape == (600, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    d2 = ((rgb[:, None] - rgb[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    neighbours = d2.argsort(1)[:, :5]
    assert (labels[neighbours] == labels[:, None]).mean() > 0.99  # colours do not mix clusters
    assert (rgb.max(0) - rgb.min(0)).min() > 0.9  # and use the whole cube
    np.testing.assert_array_equal(rgb, aligned_colours(res.eigvecs, res.landmarks))


def test_rgb_mapping_clips_quantiles():
    coords = np.stack([np.arange(101.0), -np.arange(101.0), np.full(101, 3.0)], 1)
    rgb = to_rgb(coords, quantile=0.1)
    np.testing.assert_allclose(rgb[:, 0], np.clip((np.arange(101) - 10) / 80, 0, 1), atol=1e-6)
    np.testing.assert_allclose(rgb[:, 1], 1 - rgb[:, 0], atol=1e-6)
    assert np.all(rgb[:, 2] == 0.0)  # a constant axis maps to one value, not NaN


def test_joint_stack_round_trips_and_shared_space_undoes_a_rotation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 4, 4, 6)) * np.linspace(3.0, 0.5, 6)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    b = np.repeat(np.repeat(a @ q, 2, axis=1), 2, axis=2)  # rotated, on a 2x finer grid
    blocks, scores = shared_space({"m:a": a, "m:b": b}, dim=6)
    assert scores["m:b"] > 0.999
    coarse_b = blocks["m:b"].reshape(5, 4, 2, 4, 2, 6).mean(axis=(2, 4))
    np.testing.assert_allclose(coarse_b, blocks["m:a"], atol=1e-4)
    X, layout = stack_blocks(blocks)
    assert X.shape == (5 * 16 + 5 * 64, 6)
    back = layout.split(X)
    np.testing.assert_array_equal(back["m:b"], blocks["m:b"])
    with pytest.raises(ZooError, match="different widths"):
        stack_blocks({"a": a, "b": a[..., :3]})


def test_tsne_separates_clusters_and_checks_its_perplexity():
    from zoo.align.tsne import tsne

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 40)
    X = rng.normal(size=(80, 5)) + labels[:, None] * 20.0
    y = tsne(X, n_dims=2, perplexity=10)
    gap = np.linalg.norm(y[labels == 0].mean(0) - y[labels == 1].mean(0))
    assert gap > 3 * max(y[labels == c].std(0).max() for c in (0, 1))
    np.testing.assert_array_equal(y, tsne(X, n_dims=2, perplexity=10))
    with pytest.raises(ZooError, match="perplexity"):
        tsne(X[:10], perplexity=30)
