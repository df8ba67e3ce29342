"""Reductions on CNN maps and ViT tokens, and pairing rows by sample id."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import DataError, ZooError
from zoo.features.layers import LayerFeatures, pair_by_ids, reduce_array


def _ids(n: int) -> list[str]:
    return [f"s{i}" for i in range(n)]


def test_gap_on_maps_averages_space_per_channel():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 4, 5, 7)).astype(np.float32)  # N, H, W, C
    out, ids = reduce_array(maps, "NCHW", _ids(3), "gap")
    assert out.shape == (3, 7)
    np.testing.assert_allclose(out[1, 2], maps[1, :, :, 2].mean(), rtol=1e-6)
    assert ids == _ids(3)


def test_gap_on_tokens_excludes_prefix_tokens_and_keeps_channels():
    # 2 prefix tokens with huge values, 4 patch tokens; channel c of patch tokens holds c.
    n, prefix, patches, c = 2, 2, 4, 6
    tokens = np.zeros((n, prefix + patches, c), np.float32)
    tokens[:, :prefix] = 1000.0
    tokens[:, prefix:] = np.arange(c)
    out, _ = reduce_array(tokens, "NLC", _ids(n), "gap", prefix_tokens=prefix)
    # Pooling over the channel axis instead would give (n, tokens) and different values.
    assert out.shape == (n, c)
    np.testing.assert_array_equal(out, np.tile(np.arange(c, dtype=np.float32), (n, 1)))


def test_cls_takes_first_prefix_token_and_refuses_cnn_maps():
    tokens = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    out, _ = reduce_array(tokens, "NLC", _ids(2), "cls", prefix_tokens=1)
    np.testing.assert_array_equal(out, tokens[:, 0])
    with pytest.raises(ZooError, match="class token"):
        reduce_array(np.zeros((2, 2, 2, 3)), "NCHW", _ids(2), "cls")


def test_grid_pools_tokens_on_their_patch_grid():
    # 1 class token + a 4x4 grid; token (i, j) carries value 10*i + j in every channel.
    grid = np.array([[10 * i + j for j in range(4)] for i in range(4)], np.float32)
    patches = np.repeat(grid.reshape(1, 16, 1), 3, axis=2)
    tokens = np.concatenate([np.full((1, 1, 3), -99, np.float32), patches], axis=1)
    out, _ = reduce_array(tokens, "NLC", _ids(1), "grid:2", prefix_tokens=1)
    expected = np.array([[5.5, 7.5], [25.5, 27.5]], np.float32)  # 2x2 block means
    np.testing.assert_allclose(out.reshape(2, 2, 3)[..., 0], expected)
    maps = np.repeat(grid.reshape(1, 4, 4, 1), 3, axis=3)
    cnn_out, _ = reduce_array(maps, "NCHW", _ids(1), "grid:2")
    np.testing.assert_allclose(cnn_out, out)


def test_positions_make_each_position_a_row_with_its_own_id():
    maps = np.random.default_rng(1).normal(size=(2, 4, 4, 3))
    out, ids = reduce_array(maps, "NCHW", ["a", "b"], "positions:2")
    assert out.shape == (8, 3)
    assert ids[:5] == ["a#0", "a#1", "a#2", "a#3", "b#0"]
    np.testing.assert_allclose(out[1], maps[0, :2, 2:].mean(axis=(0, 1)))


def test_flatten_and_unknown_reduction():
    maps = np.ones((2, 3, 3, 4))
    assert reduce_array(maps, "NCHW", _ids(2), "flatten")[0].shape == (2, 36)
    with pytest.raises(ZooError, match="unknown reduction"):
        reduce_array(maps, "NCHW", _ids(2), "max")


def test_layer_features_check_shapes():
    with pytest.raises(ValueError):
        LayerFeatures(np.zeros((2, 3)), "NCHW", _ids(2))
    with pytest.raises(ValueError):
        LayerFeatures(np.zeros((2, 3)), "NC", _ids(3))


def test_pair_by_ids_follows_ids_not_positions():
    a_ids = ["x", "y", "z"]
    b_ids = ["z", "x", "y"]
    ia, ib = pair_by_ids(a_ids, b_ids)
    assert [b_ids[i] for i in ib] == [a_ids[i] for i in ia]
    with pytest.raises(DataError, match="do not match"):
        pair_by_ids(["x", "y"], ["x", "q"])
