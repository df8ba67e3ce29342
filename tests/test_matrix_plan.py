"""The run plan: deterministic units, sharding, resume after a crash, merge, stored states."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from zoo.comparisons import plan as planmod
from zoo.comparisons.plan import (
    STAGES,
    assemble,
    make_plan,
    missing_units,
    open_run,
    parse_shard,
    run_shard,
    shard_from_env,
    shard_units,
)
from zoo.data.resolve import open_dataset
from zoo.engine.allpairs import all_pairs
from zoo.errors import ZooError
from zoo.features.cache import FeatureCache
from zoo.features.featureset import extract_set
from zoo.features.layers import LayerFeatures
from zoo.registry.host import get_registry

MODELS = ("toy/cnn", "toy/vit")


def toy_plan(dataset, metric="cka", samples_per_unit=5, block=3):
    registry = get_registry()
    models = [(m, [i.as_dict() for i in sorted(registry.model(m).layers(),
                                                key=lambda i: i.depth)]) for m in MODELS]
    data = {"name": dataset.name, "fingerprint": dataset.fingerprint, "n": len(dataset)}
    return make_plan(models, data, metric, symmetric=registry.metric(metric).symmetric,
                     random_init=True, batch_size=4, samples_per_unit=samples_per_unit,
                     layers_per_block=block)


@pytest.fixture(scope="module")
def dataset():
    return open_dataset("synthetic:12")


def in_memory(dataset, metric):
    """The reference: one extraction per model and the engine over all layers at once."""
    registry = get_registry()
    sets = [extract_set(registry.model(m).load(random_init=True), dataset, None, "gap", 4)
            for m in MODELS]
    assert sets[0].sample_ids == sets[1].sample_ids
    return all_pairs(registry.metric(metric), [x for s in sets for x in s.arrays()])[0]


def run_all(plan, run, dataset, shards=1):
    """Every shard, stage by stage in this process (as concurrent shards would interleave)."""
    open_run(run, plan)
    computed = []
    for stage in STAGES:
        for k in range(shards):
            computed += run_shard(plan, run, k, shards, dataset=dataset, stages=[stage])
    return computed


def test_units_are_deterministic_and_shards_partition_them(dataset):
    plan = toy_plan(dataset)
    assert [u.id for u in plan.units] == [u.id for u in toy_plan(dataset).units]
    kinds = [u.kind for u in plan.units]
    # 12 samples in units of 5 rounded up to whole batches of 4 (8) -> 2 per model; 10 layers;
    # blocks of 3 -> 4 blocks, 10 on or above the diagonal (symmetric metric)
    assert (kinds.count("extract"), kinds.count("prepare"), kinds.count("score")) == (4, 10, 10)
    shares = [{u.id for u in shard_units(plan, k, 3)} for k in range(3)]
    assert set().union(*shares) == {u.id for u in plan.units}
    assert sum(map(len, shares)) == len(plan.units)
    asymmetric = [u.id for u in toy_plan(dataset, metric="linreg").units if u.kind == "score"]
    assert len(asymmetric) == 16 and "score-b0003-b0000" in asymmetric


def test_sharded_and_merged_equals_unsharded_and_the_in_memory_matrix(dataset, tmp_path):
    plan = toy_plan(dataset)
    run_all(plan, tmp_path / "one", dataset)
    computed = run_all(plan, tmp_path / "two", dataset, shards=2)
    assert sorted(computed) == sorted(u.id for u in plan.units)
    values, reasons, n = assemble(plan, tmp_path / "one")
    sharded, sharded_reasons, _ = assemble(plan, tmp_path / "two")
    np.testing.assert_array_equal(sharded, values)
    assert (sharded_reasons == reasons).all()
    direct = in_memory(dataset, "cka")
    assert n == 12
    np.testing.assert_allclose(values, direct, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-9)


def test_killed_run_resumes_and_recomputes_only_unfinished_units(dataset, tmp_path,
                                                                 monkeypatch):
    plan = toy_plan(dataset)
    reference = tmp_path / "ref"
    run_all(plan, reference, dataset)
    run = tmp_path / "run"
    open_run(run, plan)
    calls = {"n": 0}
    original = planmod._Worker._score

    def crash_on_fourth(self, unit, out):
        calls["n"] += 1
        if calls["n"] == 4:  # the unit has written its outputs but not its marker
            original(self, unit, out)
            raise RuntimeError("killed")
        original(self, unit, out)

    monkeypatch.setattr(planmod._Worker, "_score", crash_on_fourth)
    with pytest.raises(RuntimeError, match="killed"):
        run_shard(plan, run, dataset=dataset)
    left = missing_units(plan, run)
    assert len(left) == 10 - 3  # 4 extract and 10 prepare units and 3 score blocks are marked
    assert all(u.startswith("score-") for u in left)
    monkeypatch.setattr(planmod._Worker, "_score", original)
    assert run_shard(plan, run, dataset=dataset) == left
    assert run_shard(plan, run, dataset=dataset) == []
    np.testing.assert_array_equal(assemble(plan, run)[0], assemble(plan, reference)[0])


def test_merge_refuses_missing_units_and_names_them(dataset, tmp_path):
    plan = toy_plan(dataset)
    open_run(tmp_path, plan)
    run_shard(plan, tmp_path, 0, 2, dataset=dataset, stages=["extract"])
    with pytest.raises(ZooError, match=r"22 of 24 units missing \(extract-m000-s000000008"):
        assemble(plan, tmp_path)


def test_a_shard_waits_for_others_then_names_what_is_missing(dataset, tmp_path):
    plan = toy_plan(dataset)
    open_run(tmp_path, plan)
    run_shard(plan, tmp_path, 1, 2, dataset=dataset, stages=["extract"])
    with pytest.raises(ZooError, match="prepare-l00001 needs extract-m000-s000000000"):
        run_shard(plan, tmp_path, 1, 2, dataset=dataset, wait=0.2)


def test_a_run_folder_refuses_another_plan_and_other_data(dataset, tmp_path):
    open_run(tmp_path, toy_plan(dataset))
    with pytest.raises(ZooError, match="differs in samples_per_unit"):
        open_run(tmp_path, toy_plan(dataset, samples_per_unit=4))
    plan = toy_plan(dataset)
    with pytest.raises(ZooError, match="same data="):
        run_shard(plan, tmp_path, dataset=open_dataset("synthetic:13"))


@pytest.mark.parametrize("metric", ["cka-debiased", "cka-rbf", "linreg", "rsa"])
def test_stored_states_score_like_fresh_ones(dataset, tmp_path, metric):
    """States written by prepare units (arrays, Gram, nested lists) decode exactly; asymmetric
    metrics get every block."""
    plan = toy_plan(dataset, metric=metric, block=4)
    run_all(plan, tmp_path, dataset, shards=2)
    values, _, _ = assemble(plan, tmp_path)
    np.testing.assert_allclose(values, in_memory(dataset, metric), rtol=1e-9, atol=1e-12)


def test_shard_defaults_come_from_torchrun_or_slurm():
    assert shard_from_env({"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5",
                           "SLURM_ARRAY_TASK_COUNT": "8"}) == (1, 8)
    assert shard_from_env({}) == (0, 1)
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1/0"):
        with pytest.raises(ZooError, match="shard="):
            parse_shard(bad)


def test_a_constant_layer_is_undefined_in_a_matrix_run_too(dataset, tmp_path):
    """Prepare units apply the engine's constant check, as `zoo compare` does."""
    plan = toy_plan(dataset, metric="mutual-knn", block=10)
    open_run(tmp_path, plan)
    run_shard(plan, tmp_path, dataset=dataset, stages=["extract"])
    marker = json.loads((tmp_path / "done" / "extract-m000-s000000000.json").read_text())
    store, key = FeatureCache(marker["store"]), marker["keys"]["0"]
    entry, fields = store.get(key), store.manifest(key)["fields"]
    shutil.rmtree(store.root / "features" / key)  # replace it by a constant entry
    store.put(key, LayerFeatures(np.ones_like(entry.data), "NC", entry.sample_ids), fields)
    run_shard(plan, tmp_path, dataset=dataset, stages=["prepare", "score"])
    values, reasons, _ = assemble(plan, tmp_path)
    assert np.isnan(values[0]).all() and "constant" in reasons[0, 1]
