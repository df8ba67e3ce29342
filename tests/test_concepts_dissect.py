"""Dissection: exact thresholds, bilinear upsampling, IoU with the per-category denominator rule,
planted units found at the right IoU, noise not labelled, ViT tokens, resampling and stability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.concepts import (
    Concept,
    ConceptSet,
    SampleLabels,
    dissect,
    label_stability,
    synthetic_concepts,
)
from zoo.concepts.maps import upsample
from zoo.concepts.threshold import float_keys, keys_to_floats, top_quantile_thresholds
from zoo.errors import ZooError
from zoo.features.layers import LayerFeatures

SIZE, GRID = 32, 8  # label resolution of the synthetic set, feature grid of the planted layers


@pytest.fixture(scope="module")
def concepts() -> ConceptSet:
    return synthetic_concepts(24, size=SIZE)


def _masks(cs: ConceptSet, name: str) -> np.ndarray:
    """(N, S, S) bool: where concept `name` is, over the whole set."""
    k = cs.number(name)
    return np.stack([(cs.labels(i).pixels == k).any(axis=0) for i in range(len(cs))])


def _pool(masks: np.ndarray, grid: int) -> np.ndarray:
    n, s, _ = masks.shape
    return masks.reshape(n, grid, s // grid, grid, s // grid).mean(axis=(2, 4))


def _resampled(cs: ConceptSet, idx: np.ndarray) -> ConceptSet:
    """The images at `idx` (with repeats) as a concept set of their own."""
    return ConceptSet("resampled", cs.concepts, [f"r{j}" for j in range(len(idx))],
                      [None] * len(idx), [lambda i=i: cs.labels(i) for i in idx], "fp")


def _reference_iou(maps: np.ndarray, cs: ConceptSet, name: str, quantile: float) -> float:
    """Direct IoU of one unit (N, h, w) with one concept: threshold by sorting, upsampling by
    torch, and the per-category rule (only images annotated for the category count)."""
    import torch

    values = np.sort(maps.ravel())
    k = math.ceil(quantile * values.size)
    threshold = values[values.size - k - 1]
    up = torch.nn.functional.interpolate(torch.from_numpy(maps[:, None]).float(), size=(SIZE, SIZE),
                                         mode="bilinear", align_corners=False)[:, 0].numpy()
    on = up > threshold
    concept = _masks(cs, name)
    category = next(c.category for c in cs.concepts if c.name == name)
    annotated = np.array([category in cs.labels(i).categories for i in range(len(cs))])
    inter = (on & concept).sum()
    return inter / (on[annotated].sum() + concept.sum() - inter)


def test_radix_select_threshold_is_the_exact_order_statistic_with_and_without_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5)).astype(np.float32)
    x[:, 1] = np.maximum(x[:, 1], 0)  # many ties at 0
    x[:, 2] = -np.abs(x[:, 2])  # negative values
    keys = float_keys(np.array([-np.inf, -2.0, -0.0, 0.0, 1e-38, 3.0, np.inf], np.float32))
    assert (np.diff(keys.astype(np.int64)) >= 0).all()
    assert keys_to_floats(keys)[5] == 3.0
    batches = lambda: ((x[i:i + 400], None) for i in range(0, 3000, 400))  # noqa: E731
    for q in (0.005, 0.2):
        t, n = top_quantile_thresholds(batches, 5, q)
        k = math.ceil(q * n)
        np.testing.assert_array_equal(t, np.sort(x, axis=0)[n - k - 1])
        assert ((x > t).sum(axis=0)[[0, 2, 3, 4]] == k).all()
    w = rng.integers(0, 4, 3000)
    weighted = lambda: ((x[i:i + 400], w[i:i + 400]) for i in range(0, 3000, 400))  # noqa: E731
    t, n = top_quantile_thresholds(weighted, 5, 0.01)
    repeated = np.repeat(x, w, axis=0)
    assert n == len(repeated)
    np.testing.assert_array_equal(t, np.sort(repeated, axis=0)[n - math.ceil(0.01 * n) - 1])


def test_bilinear_upsampling_matches_torch():
    import torch

    maps = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype(np.float32)
    ours = upsample(maps, (13, 16))
    ref = torch.nn.functional.interpolate(torch.from_numpy(maps).permute(0, 3, 1, 2),
                                          size=(13, 16), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_unit_equal_to_a_concept_mask_gets_iou_one(concepts: ConceptSet):
    red = _masks(concepts, "red")
    noise = np.random.default_rng(2).uniform(0, 1e-3, red.shape)
    acts = (red + noise)[..., None].astype(np.float32)  # at label resolution: no resampling
    quantile = (red.sum() - 0.5) / red.size  # keeps exactly the red pixels
    result = dissect(acts, concepts, quantile=quantile)
    (row,) = result.unit_table()
    assert (row["concept"], row["category"], row["labelled"]) == ("red", "colour", True)
    assert row["iou"] == 1.0


def _planted(cs: ConceptSet, names: tuple[str, ...], noise_units: int, seed: int) -> np.ndarray:
    """(N, GRID, GRID, units): each named concept's coverage of the grid cells (plus a little
    noise to break ties), then units of pure noise."""
    rng = np.random.default_rng(seed)
    units = [_pool(_masks(cs, name), GRID) + rng.normal(0, 0.01, (len(cs), GRID, GRID))
             for name in names]
    units += [rng.normal(size=(len(cs), GRID, GRID)) for _ in range(noise_units)]
    return np.stack(units, axis=-1).astype(np.float32)


def test_planted_units_are_labelled_with_their_concept_at_the_reference_iou(concepts):
    # the top quantile sits inside objects and colour regions of about this frequency
    planted, quantile = ("house", "car", "red", "blue"), 0.04
    acts = _planted(concepts, planted, 0, seed=3)
    result = dissect(acts, concepts, quantile=quantile)
    rows = result.unit_table()
    for u, name in enumerate(planted):
        assert rows[u]["concept"] == name and rows[u]["labelled"]
        expected = _reference_iou(acts[..., u], concepts, name, quantile)
        assert expected > 0.3
        assert rows[u]["iou"] == pytest.approx(expected, rel=1e-9)
    assert result.profile() == {"house": 1, "car": 1, "red": 1, "blue": 1}
    assert result.abstracted() == {"object": {"units": 2, "concepts": 2},
                                   "colour": {"units": 2, "concepts": 2}}


def test_noise_units_are_not_labelled_and_small_parts_are_at_the_default_quantile(concepts):
    planted = ("wheel", "door")
    acts = _planted(concepts, planted, 10, seed=4)
    result = dissect(acts, concepts)  # quantile 0.005, cut-off 0.04
    labels = result.labels()
    assert [result.concepts[k].name for k in labels[:2]] == list(planted)
    for u, name in enumerate(planted):
        assert result.best()[1][u] == pytest.approx(
            _reference_iou(acts[..., u], concepts, name, 0.005), rel=1e-9)
    assert (labels[2:] == -1).all()
    assert (result.best()[1][2:] < 0.04).all()
    assert result.profile() == {"door": 1, "wheel": 1}


def test_per_category_denominator_counts_only_images_annotated_for_the_category():
    # image 0 is annotated for "object" (concept 1 in its left column), image 1 only for colour.
    planes0 = np.array([[[1, 0], [1, 0]], [[2, 2], [2, 2]]], np.int32)
    planes1 = np.array([[[2, 2], [2, 2]]], np.int32)
    labels = [SampleLabels(planes0, (), frozenset({"object", "colour"})),
              SampleLabels(planes1, (), frozenset({"colour"}))]
    cs = ConceptSet("hand", [Concept("cup", "object"), Concept("grey", "colour")], ["a", "b"],
                    [None, None], [lambda: labels[0], lambda: labels[1]], "fp")
    # one unit, active (top 3 of 8 values) on image 0 top-left, top-right and image 1 top-left
    acts = np.array([[[5, 4], [0, 0]], [[3, 1], [1, 1]]], np.float32)[..., None]
    result = dissect(acts, cs, quantile=3 / 8)
    # cup: I = 1, unit active in object-annotated images = 2 (image 1 is not counted), |cup| = 2
    # grey: I = 3, active in colour images = 3, |grey| = 8
    np.testing.assert_allclose(result.iou[0], [1 / (2 + 2 - 1), 3 / (3 + 8 - 3)])


def test_whole_image_labels_cover_every_pixel():
    planes = np.zeros((0, 2, 2), np.int32)
    labels = [SampleLabels(planes, (1,), frozenset({"scene"})),
              SampleLabels(planes, (), frozenset({"scene"}))]
    cs = ConceptSet("scenes", [Concept("street", "scene")], ["a", "b"], [None, None],
                    [lambda: labels[0], lambda: labels[1]], "fp")
    acts = np.array([[[9, 8], [7, 0]], [[6, 0], [0, 0]]], np.float32)[..., None]
    result = dissect(acts, cs, quantile=4 / 8)  # active: 9, 8, 7 (image a) and 6 (image b)
    np.testing.assert_allclose(result.iou[0, 0], 3 / (4 + 4 - 3))


def test_vit_tokens_on_their_grid_dissect_like_the_same_maps(concepts):
    rng = np.random.default_rng(4)
    maps = np.stack([_pool(_masks(concepts, "tree"), GRID), rng.normal(size=(24, GRID, GRID))],
                    axis=-1).astype(np.float32)
    prefix = rng.normal(100, 1, (24, 2, 2)).astype(np.float32)  # class + register tokens
    tokens = np.concatenate([prefix, maps.reshape(24, GRID * GRID, 2)], axis=1)
    as_maps = dissect(maps, concepts, quantile=0.01)
    as_tokens = dissect(LayerFeatures(tokens, "NLC", concepts.ids, prefix_tokens=2), concepts,
                        quantile=0.01)
    np.testing.assert_array_equal(as_maps.iou, as_tokens.iou)
    np.testing.assert_array_equal(as_maps.thresholds, as_tokens.thresholds)


def test_layer_features_rows_are_paired_with_labels_by_sample_id(concepts):
    maps = _pool(_masks(concepts, "roof"), GRID)[..., None].astype(np.float32)
    perm = np.random.default_rng(5).permutation(len(concepts))
    shuffled = LayerFeatures(maps[perm], "NCHW", [concepts.ids[i] for i in perm])
    np.testing.assert_array_equal(dissect(shuffled, concepts, quantile=0.01).iou,
                                  dissect(maps, concepts, quantile=0.01).iou)
    with pytest.raises(ZooError, match="rows"):
        dissect(maps[:5], concepts)
    with pytest.raises(ZooError, match="spatial"):
        dissect(LayerFeatures(maps[:, 0, 0], "NC", concepts.ids), concepts)


def test_sample_weights_dissect_a_resample_exactly(concepts):
    rng = np.random.default_rng(6)
    maps = np.stack([_pool(_masks(concepts, "crown"), GRID), rng.normal(size=(24, GRID, GRID))],
                    axis=-1).astype(np.float32)
    weights = np.bincount(rng.integers(0, 24, 24), minlength=24)
    idx = np.repeat(np.arange(24), weights)
    direct = dissect(maps[idx], _resampled(concepts, idx), quantile=0.01)
    weighted = dissect(maps, concepts, quantile=0.01, sample_weights=weights)
    np.testing.assert_array_equal(direct.thresholds, weighted.thresholds)
    np.testing.assert_allclose(direct.iou, weighted.iou, rtol=1e-12)


def test_label_stability_matches_dissecting_explicit_bootstrap_resamples(concepts):
    maps = _planted(concepts, ("house",), 3, seed=7)
    reference = dissect(maps, concepts, quantile=0.04)
    stability = label_stability(maps, concepts, reference, resamples=4, seed=0)
    rng = np.random.default_rng(0)  # the documented draw: N images with replacement per resample
    agree = np.zeros(4)
    for _ in range(4):
        idx = np.sort(rng.integers(0, len(concepts), len(concepts)))
        again = dissect(maps[idx], _resampled(concepts, idx), quantile=0.04)
        agree += again.labels() == reference.labels()
    np.testing.assert_array_equal(stability, agree / 4)
    assert stability[0] == 1.0  # the planted house unit keeps its label
    assert (reference.labels()[1:] == -1).all()  # "no label" is what noise units must keep


def test_bad_arguments_are_user_errors(concepts):
    maps = np.zeros((24, GRID, GRID, 1), np.float32)
    with pytest.raises(ZooError, match="quantile"):
        dissect(maps, concepts, quantile=0.0)
    with pytest.raises(ZooError, match="cut-off"):
        dissect(maps, concepts, iou_cutoff=-1)
    with pytest.raises(ZooError, match="sample_weights"):
        dissect(maps, concepts, sample_weights=np.ones(3))


def test_memory_mapped_features_dissect_like_in_memory_ones(monkeypatch):
    """dissect_model streams each layer through the cache as a read-only memory map, handing
    pages back as it reads; labels and IoUs are those of the in-memory arrays."""
    from pathlib import Path

    import zoo.concepts.maps as maps
    from zoo.api import load
    from zoo.concepts import dissect_model, open_concepts
    from zoo.features.extraction import extract
    from zoo.io import cache_root

    monkeypatch.setattr(maps, "RELEASE_BYTES", 1)  # release after every read
    model = load("toy/cnn", random_init=True)
    concepts = open_concepts("synthetic:8")
    feats = extract(model, concepts.dataset(), ["stage2"], "none", 4, None)["stage2"]
    want = dissect(feats, concepts)
    for cache in (True, False):
        run = dissect_model(model, "synthetic:8", ["stage2"], cache=cache, batch_size=3)
        got = run.layers["stage2"]
        np.testing.assert_array_equal(got.thresholds, want.thresholds)
        np.testing.assert_array_equal(got.iou, want.iou)
    entries = list(Path(cache_root()).glob("features/*/features.npy"))
    assert len(entries) == 1  # the cached run's; the uncached one left nothing behind
    from zoo.features.cache import FeatureCache

    mapped = extract(model, concepts.dataset(), ["stage2"], "none", 4, FeatureCache(),
                     mmap=True)["stage2"]
    assert maps.UnitMaps(mapped)._map is not None  # the pages can be handed back
    assert maps.UnitMaps(feats)._map is None  # in-memory arrays are left alone
