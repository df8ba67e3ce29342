"""`zoo.open` reads saved cuts, alignments, dissections and embeddings back into the objects
that wrote them: equal tables, the same summary keys, exactly the saved numbers, and a clear
ZooError for the parts a folder does not hold (features, images)."""

from __future__ import annotations

import shutil
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

import zoo
import zoo.align
import zoo.concepts
from zoo.align.learned import AlignConfig
from zoo.errors import DataError, ZooError

TOY = ["toy/cnn", "toy/vit"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small run of each kind, and the folder it was saved in."""
    root = tmp_path_factory.mktemp("runs")
    fast = {"random_init": True, "cache": False}
    learned = zoo.align.align(TOY, "synthetic:6", "stage2,block1", target="toy/cnn:stage3",
                              config=AlignConfig(dim=6, epochs=4, tokens=32, n_eig=4), **fast)
    pairwise = zoo.align.align(TOY, "synthetic:6", "stage3,block2", method="ridge", **fast)
    maps = learned.save(root / "learned")
    # masks (synthetic) and the default shared space; no masks (samples) and learned maps
    cut = zoo.align.cut(TOY, "synthetic:6", "stage2,block1", n_eig=4, landmarks=100, **fast)
    samples = zoo.dataset("samples").subset(range(3))
    cut_maps = zoo.align.cut(TOY, samples, "stage2,block1", n_eig=4, landmarks=100, maps=maps,
                             **fast)
    cnn = zoo.concepts.dissect_model("toy/cnn", "synthetic:8", "stage*", stability=2, **fast)
    vit = zoo.concepts.dissect_model("toy/vit", "synthetic:8", "block*", **fast)
    folders = {"cnn": cnn.save(root / "cnn"), "vit": vit.save(root / "vit")}
    perf = root / "perf.csv"
    perf.write_text("model,task,score\ntoy/cnn,seg,0.4\ntoy/vit,seg,0.6\ntoy/cnn,cls,0.3\n")
    emb = zoo.concepts.embed([folders["cnn"], folders["vit"]], performance=perf, max_k=3)
    return {"cut": (cut, cut.save(root / "cut", images=2)),
            "cut-maps": (cut_maps, cut_maps.save(root / "cut-maps", images=2)),
            "learned": (learned, maps),
            "pairwise": (pairwise, pairwise.save(root / "pairwise")),
            "dissect": (cnn, folders["cnn"]),
            "lce": (emb, emb.save(root / "lce"))}


KINDS = ["cut", "cut-maps", "learned", "pairwise", "dissect", "lce"]


@pytest.mark.parametrize("kind", KINDS)
def test_open_reads_back_the_same_class_with_an_equal_table(runs, kind):
    original, folder = runs[kind]
    back = zoo.open(folder)
    assert type(back) is type(original)
    pd.testing.assert_frame_equal(back.table(), original.table())
    assert back.to_dict().keys() == original.to_dict().keys()
    np.testing.assert_equal(back.to_dict(), original.to_dict())  # NaN equals NaN here


@pytest.mark.parametrize("kind", KINDS)
def test_original_and_loaded_have_a_short_repr_and_an_html_view(runs, kind):
    original, folder = runs[kind]
    for result in (original, zoo.open(folder)):
        text = repr(result)
        assert text.startswith(f"<{type(original).__name__} ") and len(text.splitlines()) < 20
        assert "<table" in result._repr_html_()


def test_a_loaded_cut_has_the_saved_cut_and_scores_but_no_features_or_images(runs, tmp_path):
    for kind in ("cut", "cut-maps"):
        run, folder = runs[kind]
        back = zoo.open(folder)
        for name in ("eigvecs", "eigvals", "landmarks", "sigma", "directions", "affinity"):
            np.testing.assert_array_equal(getattr(back.result.cut, name),
                                          getattr(run.result.cut, name))
        np.testing.assert_array_equal(back.result.colours, run.result.colours)
        np.testing.assert_array_equal(back.result.trajectory, run.result.trajectory)
        assert back.result.layout == run.result.layout and back.settings == run.settings
        assert back.result.bias == run.result.bias
        np.testing.assert_equal(back.result.alignment, run.result.alignment)
        np.testing.assert_equal({k: asdict(v) for k, v in back.result.segmentation.items()},
                                {k: asdict(v) for k, v in run.result.segmentation.items()})
        assert back.blocks.info == run.blocks.info
        assert back.blocks.dataset.ids == run.blocks.dataset.ids
        assert back.blocks.dataset.fingerprint == run.blocks.dataset.fingerprint
    assert runs["cut"][0].result.segmentation and not runs["cut-maps"][0].result.segmentation
    assert runs["cut"][0].result.alignment and not runs["cut-maps"][0].result.alignment
    with pytest.raises(ZooError, match="features are not saved.*extract them again"):
        back.blocks.maps["toy/cnn:stage2"]
    with pytest.raises(ZooError, match="images of samples are not saved.*zoo.dataset"):
        back.blocks.dataset.image(0)
    with pytest.raises(ZooError, match="images of samples are not saved"):
        back.save(tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_a_loaded_alignment_maps_and_transforms_like_the_original(runs):
    learned, folder = runs["learned"]
    back = zoo.open(folder)
    assert list(back.maps) == list(learned.maps)
    for key, lin in learned.maps.items():
        np.testing.assert_array_equal(back.maps[key].weight, lin.weight)
        np.testing.assert_array_equal(back.maps[key].bias, lin.bias)
    np.testing.assert_equal(back.history, learned.history)
    np.testing.assert_equal(back.meta, learned.meta)
    np.testing.assert_equal(back.scores, learned.scores)
    assert np.isnan(learned.scores["val_r2"])  # one held-out image: NaN survives the trip
    pairwise, folder = runs["pairwise"]
    fit = zoo.open(folder).fit
    x = np.random.default_rng(0).normal(size=(5, pairwise.fit.x_map.shape[0]))
    np.testing.assert_array_equal(fit.transform_x(x), pairwise.fit.transform_x(x))
    assert (fit.score, fit.n_train, fit.method) == (pairwise.fit.score, pairwise.fit.n_train,
                                                    "ridge")


def test_a_loaded_dissection_labels_like_the_original_and_saves_the_same_files(runs, tmp_path):
    run, folder = runs["dissect"]
    back = zoo.open(folder)
    assert list(back.layers) == list(run.layers) and back.settings == run.settings
    for name, d in run.layers.items():
        got = back.layers[name]
        np.testing.assert_array_equal(got.iou, d.iou)
        np.testing.assert_array_equal(got.thresholds, d.thresholds)
        assert got.thresholds.dtype == d.thresholds.dtype
        np.testing.assert_array_equal(got.labels(), d.labels())
        assert got.profile() == d.profile() and got.concepts == d.concepts
        np.testing.assert_array_equal(back.stability[name], run.stability[name])
    assert back.concepts.ids == run.concepts.ids and back.concepts.name == "synthetic:8"
    for use in (lambda: back.concepts.image(0), lambda: back.concepts.labels(0),
                lambda: back.concepts.dataset().image(0)):
        with pytest.raises(ZooError, match="not saved.*open_concepts\\('synthetic:8'\\)"):
            use()
    again = back.save(tmp_path / "again")  # needs no images: the same tables again
    for name in ("dissect.json", "concepts.csv", "stage1/units.csv", "stage3/iou.npy"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_a_loaded_embedding_is_the_same_embedding(runs, tmp_path):
    emb, folder = runs["lce"]
    back = zoo.open(folder)
    for name in ("matrix", "coords", "explained", "loadings", "clusters"):
        np.testing.assert_array_equal(getattr(back, name), getattr(emb, name))
    assert (back.k, back.inertias, back.columns) == (emb.k, emb.inertias, emb.columns)
    np.testing.assert_equal([vars(c) for c in back.axis_categories + back.performance],
                            [vars(c) for c in emb.axis_categories + emb.performance])
    assert any(np.isnan(c.r) for c in emb.performance)  # one model scored: r undefined
    for got, entry in zip(back.entries, emb.entries, strict=True):
        assert (got.name, got.counts, got.category_counts()) == (
            entry.name, entry.counts, entry.category_counts())
    again = back.save(tmp_path / "again")
    for name in ("lce.json", "lce.csv", "matrix.csv", "axes.csv", "axis_categories.csv"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


@pytest.mark.parametrize("kind, name, damage", [
    ("cut", "eigvecs.npy", "delete"), ("cut", "cut.json", "truncate"),
    ("learned", "maps.json", "truncate"), ("pairwise", "x_mean.npy", "delete"),
    ("dissect", "stage2/units.csv", "truncate"), ("lce", "axes.csv", "truncate")])
def test_an_incomplete_or_damaged_folder_is_one_clear_error(runs, tmp_path, kind, name, damage):
    copy = tmp_path / kind
    shutil.copytree(runs[kind][1], copy)
    if damage == "delete":
        (copy / name).unlink()
    else:
        (copy / name).write_text("{")
    with pytest.raises(DataError, match=f"cannot read the result saved in {copy}.*rerun"):
        zoo.open(copy)
