"""Extraction throughput: `zoo.extract` of every layer vs a plain hooked forward loop.

The plain loop is what thingsvision or a notebook does: forward hooks on the same modules,
`model.preprocess` on each batch, `torch.inference_mode`, outputs moved to the host and
concatenated at the end (layout as the module gives it). zoo additionally converts to
channels-last, checks shapes and finiteness, reduces, fills the result array in the storage
dtype on a background thread and (with a cache) writes each batch once, in place, into the
entry's file with a CRC-32 per range (each cached run's entries are deleted, untimed, before the
next run: every path's output memory is then recycled alike; `--keep-entries` lets the page
cache grow instead, which on a VM whose fresh pages fault to the host costs more than the rest
together). Both paths read the same decoded PIL images from memory (decoded once, up front),
use the same loaded model, layers and batch size, and run alternately; each figure is the best
of `--repeats`. Random-init weights: throughput does not depend on them.

Prints images/s for both paths (zoo without and with an on-disk cache), the overhead ratio,
the same ratios in process CPU time (less sensitive to other jobs on a shared machine, but
not immune: torch's OpenMP threads spin, burning CPU, while another job holds a core), and, with
--profile, where zoo's time goes (cProfile, cumulative).
Run: .venv/bin/python benchmarks/bench_extract.py  [--device cuda --size 224 --images 512]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from machine import describe, load_line  # benchmarks/machine.py

from zoo.api import dataset, load
from zoo.data.dataset import Dataset
from zoo.features.cache import FeatureCache
from zoo.features.extraction import extract
from zoo.model.base import ZooModel

FAMILIES = ("resnet-ssl", "dinov2")  # a CNN and a ViT


def decoded(n: int) -> Dataset:
    """`n` synthetic images decoded once into memory, served by an in-memory Dataset."""
    source = dataset(f"synthetic:{n}")
    images = [source.image(i) for i in range(n)]
    return Dataset("decoded", source.ids, [lambda im=im: im for im in images], "bench-decoded")


def plain_loop(model: ZooModel, images: Sequence[Any], layers: Sequence[str],
               batch: int) -> dict[str, np.ndarray]:
    """Hooks on the layers' modules, one forward per batch, outputs to host, concatenated."""
    modules = dict(model.module.named_modules())
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def hook(name: str) -> Callable[..., None]:
        def grab(_mod: Any, _inp: Any, out: Any) -> None:
            out = out[0] if isinstance(out, (tuple, list)) else out
            outs[name].append(out.detach().cpu())
        return grab

    handles = [modules[model.layer(n).module].register_forward_hook(hook(n)) for n in layers]
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                model.run(model.preprocess(images[start:start + batch]).to(model.device))
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(parts).numpy() for name, parts in outs.items()}


def _timed(fn: Callable[[], object]) -> float:
    return _clocked(fn)[0]


def _clocked(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def _empty(folder: str) -> None:
    """Delete what `folder` holds (the page cache of deleted files is freed at once)."""
    for entry in os.scandir(folder):
        shutil.rmtree(entry.path)


def bench(family: str, args: argparse.Namespace) -> None:
    """Time both paths on one family and print images/s, the overhead and (opt.) a profile."""
    options: dict[str, Any] = {"tiny": True} if args.tiny else {"size": args.size}
    model = load(family, random_init=True, device=args.device, **options)
    model.module.eval()
    data = decoded(args.images)
    images = [data.image(i) for i in range(len(data))]
    layers = list(model.layers)
    runs = {
        "plain": lambda: plain_loop(model, images, layers, args.batch),
        "zoo": lambda: extract(model, data, layers, batch_size=args.batch),
    }
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh cache folder each time: every run computes and writes all entries.
        folders = (os.path.join(tmp, str(i)) for i in range(10**6))
        runs["zoo+cache"] = lambda: extract(model, data, layers, batch_size=args.batch,
                                            cache=FeatureCache(next(folders)))
        runs["plain"]()  # warm-up (allocator, lazy transforms)
        best = dict.fromkeys(runs, float("inf"))
        cpu = dict.fromkeys(runs, float("inf"))
        for _ in range(args.repeats):  # alternate, so load changes hit every path alike
            for name, fn in runs.items():
                wall, used = _clocked(fn)
                best[name], cpu[name] = min(best[name], wall), min(cpu[name], used)
                if not args.keep_entries:  # untimed: the next run reuses the freed pages
                    _empty(tmp)
    x = model.preprocess(images[:args.batch]).to(model.device)

    def forward_only() -> None:
        with torch.inference_mode():
            model.run(x)

    forward_only()  # warm-up: the first call at a new shape sets up kernels
    forward = args.images / args.batch * min(_timed(forward_only) for _ in range(args.repeats))
    shapes = plain_loop(model, images[:2], layers, 2)
    print(f"\n{model.id} (random init, {model.input.size} px, {len(layers)} layers, "
          f"{sum(v[0].size for v in shapes.values()) * 4 / 2**20:.1f} MiB of features/image), "
          f"{args.images} images, batch {args.batch}, device {args.device}")
    rate = {name: args.images / t for name, t in best.items()}
    print(f"  forward only (preprocessed batch, no hooks): {args.images / forward:.1f} images/s")
    for name in runs:
        print(f"  {name:10s} {rate[name]:8.1f} images/s  ({best[name]:.2f} s)")
    print(f"  overhead of zoo vs plain: {best['zoo'] / best['plain'] - 1:+.1%} without cache, "
          f"{best['zoo+cache'] / best['plain'] - 1:+.1%} with cache (aim <= +10%)")
    print(f"  in CPU time: {cpu['zoo'] / cpu['plain'] - 1:+.1%} without cache, "
          f"{cpu['zoo+cache'] / cpu['plain'] - 1:+.1%} with cache")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(runs["zoo"])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=112, help="input size (full-size models)")
    parser.add_argument("--tiny", action="store_true", help="the families' tiny test builds")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep-entries", action="store_true",
                        help="keep every cached run's entries (by default each is deleted, "
                             "untimed, so the page cache does not grow from run to run)")
    parser.add_argument("--profile", type=int, default=0, metavar="LINES",
                        help="print this many lines of a cProfile of one zoo run")
    args = parser.parse_args()
    print(describe())
    for family in args.families:
        bench(family, args)


if __name__ == "__main__":
    main()
    print(f"at the end: {load_line()}")
