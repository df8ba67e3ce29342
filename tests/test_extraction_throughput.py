"""Extraction after the throughput work: fp32 features are bit-identical to a plain hooked
forward, loader workers and the cache change nothing, precision is keyed apart, device-side
reductions match the host ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import assert_user_error, run_zoo
from tests.test_cache import CountingModel
from zoo.data.dataset import Dataset, to_rgb
from zoo.data.sources import synthetic
from zoo.errors import DataError, ZooError
from zoo.features.cache import FeatureCache
from zoo.features.extraction import extract, plan_batches, reduce_tensor
from zoo.features.layers import reduce_array
from zoo.registry.host import get_registry


@pytest.fixture(params=["toy/cnn", "toy/vit"])
def model(request):
    return get_registry().model(request.param).load()


def plain_hooked(model, data, layers, batch):
    """What a notebook does: hooks on the modules, the module's own output, channels-last."""
    modules = dict(model.module.named_modules())
    outs = {n: [] for n in layers}

    def grab(name):
        def hook(_m, _i, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            if model.layer(name).layout == "NCHW":
                out = out.permute(0, 2, 3, 1)
            outs[name].append(out.detach().clone())
        return hook

    handles = [modules[model.layer(n).module].register_forward_hook(grab(n)) for n in layers]
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch):
                images = [data.image(i) for i in range(start, min(start + batch, len(data)))]
                model.run(model.preprocess(images))
    finally:
        for h in handles:
            h.remove()
    return {n: [t.numpy() for t in v] for n, v in outs.items()}


@pytest.mark.parametrize("cached", [False, True])
def test_fp32_features_equal_a_plain_hooked_forward(model, cached):
    data, layers = synthetic("7"), list(model.layers)
    want = plain_hooked(model, data, layers, 3)
    cache = FeatureCache() if cached else None
    for _ in range(2 if cached else 1):  # computed, then served from the entry
        got = extract(model, data, layers, "none", batch_size=3, cache=cache)
        for name in layers:
            assert got[name].data.dtype == np.float32
            np.testing.assert_array_equal(got[name].data, np.concatenate(want[name]), name)
        gap = extract(model, data, layers, "gap", batch_size=3, cache=cache)
        for name in layers:  # reduced batch by batch, as before
            info = model.layer(name)
            ref = [reduce_array(b, info.layout, ["x"] * len(b), "gap", info.prefix_tokens)[0]
                   for b in want[name]]
            np.testing.assert_array_equal(gap[name].data, np.concatenate(ref), name)


def test_memory_mapped_entries_are_read_only_and_equal(model):
    data, cache = synthetic("5"), FeatureCache()
    name = next(n for n, i in model.layers.items() if i.layout != "NC")
    fresh = extract(model, data, [name], "none", batch_size=2, cache=None)[name]
    for _ in range(2):  # written now, then a hit
        mapped = extract(model, data, [name], "none", batch_size=2, cache=cache,
                         mmap=True)[name]
        assert isinstance(mapped.data, np.memmap) and not mapped.data.flags.writeable
        np.testing.assert_array_equal(mapped.data, fresh.data)


def test_loader_workers_give_the_same_features():
    toy = get_registry().model("toy/cnn").load()
    data = synthetic("9")
    inline = extract(toy, data, ["stage1", "stage3"], "grid:2", batch_size=4)
    pooled = extract(toy, data, ["stage1", "stage3"], "grid:2", batch_size=4, workers=2)
    for name in inline:
        np.testing.assert_array_equal(pooled[name].data, inline[name].data)


def test_an_unreadable_image_in_a_worker_is_one_clear_error():
    toy = get_registry().model("toy/cnn").load()

    def broken():
        raise DataError("truncated file")

    good = synthetic("3")
    data = Dataset("mixed", ["a", "b", "c", "bad"],
                   [lambda i=i: good._loaders[i]() for i in range(3)] + [broken], "fp",
                   origin=["a", "b", "c", "bad.png"])
    with pytest.raises(DataError, match=r"^image bad.png: truncated file; fix or remove it"):
        extract(toy, data, ["stage1"], "gap", batch_size=2, workers=1)


def test_precision_is_keyed_apart_and_close_to_fp32():
    toy = get_registry().model("toy/cnn").load()
    cache, data = FeatureCache(), synthetic("6")
    full = extract(toy, data, ["stage2"], "gap", cache=cache)["stage2"]
    half = CountingModel(toy)
    bf16 = extract(half, data, ["stage2"], "gap", cache=cache, precision="bf16")["stage2"]
    assert half.calls == 1 and bf16.meta["precision"] == "bf16"
    assert {e["fields"]["precision"] for e in cache.entries()} == {"fp32", "bf16"}
    assert not np.array_equal(bf16.data, full.data)
    np.testing.assert_allclose(bf16.data, full.data, rtol=0.05, atol=0.05)
    again = CountingModel(toy)
    extract(again, data, ["stage2"], "gap", cache=cache, precision="bf16")
    assert again.calls == 0
    with pytest.raises(ZooError, match="precision 'fp8'"):
        extract(toy, data, ["stage2"], "gap", precision="fp8")
    with pytest.raises(ZooError, match="loader workers"):
        extract(toy, data, ["stage2"], "gap", workers=-1)


@pytest.mark.parametrize("reduction", ["none", "gap", "cls", "flatten", "grid:2",
                                       "positions:3"])
def test_device_reductions_match_the_host_ones(model, reduction):
    x = model.preprocess([synthetic("2").image(i) for i in range(2)])
    feats = model.forward_layers(x, list(model.layers))
    for name, t in feats.items():
        info = model.layer(name)
        try:
            want, _ = reduce_array(t.numpy(), info.layout, ["a", "b"], reduction,
                                   info.prefix_tokens)
        except ZooError as exc:
            with pytest.raises(ZooError, match=str(exc)[:20]):
                reduce_tensor(t, info, reduction)
            continue
        got = reduce_tensor(t, info, reduction)
        assert got.is_contiguous() and tuple(got.shape) == want.shape
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_plan_fills_only_the_gaps_and_never_crosses_a_stored_range():
    stored = {"a": {0: 3, 3: 6}, "b": {4: 5}}
    assert plan_batches(stored, 10, 4) == [(0, 4, ["b"]), (5, 6, ["b"]), (6, 10, ["a", "b"])]
    assert plan_batches({"a": {0: 10}}, 10, 4) == []


def test_an_upright_rgb_image_is_not_copied():
    from PIL import Image

    rgb = Image.new("RGB", (4, 4), (1, 2, 3))
    assert to_rgb(rgb) is rgb
    grey = Image.new("L", (4, 4), 7)
    assert to_rgb(grey).mode == "RGB" and to_rgb(grey).getpixel((0, 0)) == (7, 7, 7)


def test_cli_loader_workers_and_precision(tmp_path):
    env = {"ZOO_CACHE_DIR": str(tmp_path)}
    ok = run_zoo("extract", "toy/cnn", "--data", "synthetic:4", "-l", "stage1",
                 "--loader-workers", "1", "--precision", "bf16", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert [e.name for e in (tmp_path / "features").iterdir()]
    assert_user_error(run_zoo("extract", "toy/cnn", "--data", "synthetic:2", "--precision",
                              "fp8", env=env), "precision 'fp8'", "fp32, bf16, fp16")
    help_text = run_zoo("compare", "--help").stdout
    assert "--loader-workers" in help_text and "--precision" in help_text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_extraction_matches_cpu(model):
    data = synthetic("6")
    layers = [n for n, i in model.layers.items() if i.layout != "NC"]  # grid needs a grid
    cpu = extract(model, data, layers, "grid:2", batch_size=4)
    model.module.to("cuda")
    model.device = torch.device("cuda")
    try:
        gpu = extract(model, data, layers, "grid:2", batch_size=4, workers=1)
        amp = extract(model, data, layers, "gap", batch_size=4, precision="bf16")
    finally:
        model.module.to("cpu")
        model.device = torch.device("cpu")
    for name in layers:
        np.testing.assert_allclose(gpu[name].data, cpu[name].data, rtol=1e-3, atol=1e-4)
        assert np.isfinite(amp[name].data).all()
