"""Sharded all-pairs runs: the same job unsharded vs 2 shards, and memory of a large plan.

1. `zoo matrix` on toy/cnn + toy/vit over synthetic images, once as one process and once with
   `--workers 2` (two shards on this machine, merged): the matrices must be identical; wall
   times are printed side by side, with the per-stage seconds the unit markers recorded.
2. A simulated large run: synthetic features for hundreds of layers are written as finished
   extract units, then the prepare and score units run in a fresh subprocess that reports its
   peak resident memory (ru_maxrss) above the resident memory after imports. Memory follows the
   block size and the samples, not the number of layers; the in-memory engine would hold every
   layer's state at once (printed for scale).

Run: .venv/bin/python benchmarks/bench_shards.py  (a few minutes on 2 idle cores)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, load_line  # benchmarks/machine.py

REPO = Path(__file__).resolve().parents[1]
JOB = ["matrix", "toy/cnn", "toy/vit", "--data", "synthetic:512", "--reduce", "gap",
       "--batch-size", "32", "--samples-per-unit", "64", "--block", "4", "--json"]
WIDTH, BLOCK = 32, 32
LARGE = [(96, 1000), (192, 1000), (384, 1000), (96, 2000), (96, 3000)]  # (layers, samples)


def zoo(*args: str, cache: Path) -> float:
    """Run `python -m zoo ARGS` with its own cache; return the wall time."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo", *args], cwd=REPO, check=True,
                   capture_output=True, env={**os.environ, "ZOO_CACHE_DIR": str(cache)})
    return time.perf_counter() - t0


def stage_seconds(run: Path) -> dict[str, float]:
    """Seconds spent per stage, summed over the unit markers."""
    out: dict[str, float] = {}
    for marker in (run / "done").glob("*.json"):
        stage = marker.stem.split("-")[0]
        out[stage] = out.get(stage, 0.0) + json.loads(marker.read_text())["seconds"]
    return {k: round(v, 2) for k, v in sorted(out.items())}


def sharded_vs_unsharded(tmp: Path) -> None:
    import numpy as np

    print(f"1. same all-pairs job ({' '.join(JOB[1:-1])})")
    rows = []
    for label, extra in (("1 process", []), ("2 workers", ["--workers", "2"])):
        run = tmp / label.replace(" ", "-")
        seconds = zoo(*JOB, "--run", str(run), "--out", str(run / "out"), *extra,
                      cache=tmp / "cache")
        values = np.array(json.loads((run / "out" / "matrix.json").read_text())["values"],
                          dtype=float)
        rows.append((label, seconds, values, stage_seconds(run)))
    for label, seconds, _, stages in rows:
        print(f"   {label:9s}: wall {seconds:6.2f} s  (unit seconds by stage: {stages})")
    print(f"   speed-up 2 workers / 1 process: {rows[0][1] / rows[1][1]:.2f}x; matrices "
          f"identical: {bool(np.array_equal(rows[0][2], rows[1][2]))}")


def child(run: str) -> None:
    """Run the prepare and score units of a prepared run folder; print memory figures."""
    import torch

    from zoo.comparisons.plan import open_run, run_shard

    torch.set_num_threads(2)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plan = open_run(run)
    t0 = time.perf_counter()
    run_shard(plan, run, stages=["prepare", "score"])
    print(json.dumps({"base_mb": base, "seconds": time.perf_counter() - t0,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def synthetic_run(folder: Path, layers: int, samples: int) -> None:
    """A plan over `layers` synthetic layers (4 models) with its extract units already done."""
    import numpy as np

    from zoo.comparisons.plan import make_plan, open_run
    from zoo.features.cache import FeatureCache, cache_key
    from zoo.features.layers import LayerFeatures
    from zoo.io import write_json

    per_model = layers // 4
    models = [(f"synthetic/m{m}", [{"name": f"l{i}", "role": "encoder", "depth": i / per_model}
                                   for i in range(per_model)]) for m in range(4)]
    plan = make_plan(models, {"name": "synthetic-features", "fingerprint": "bench",
                              "n": samples}, "cka", symmetric=True, batch_size=samples,
                     samples_per_unit=samples, layers_per_block=BLOCK)
    open_run(folder, plan)
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(samples, 8))
    store = FeatureCache(folder / "features")  # the store a `--no-cache` run keeps
    ids = [f"s{i}" for i in range(samples)]
    for unit in (u for u in plan.units if u.kind == "extract"):
        keys = {}
        for g, info in enumerate(plan.layers):
            if info["model"] == unit.args["model"]:
                mix = rng.normal(size=(8, WIDTH))
                feats = np.tanh(latent @ mix) + 0.1 * rng.normal(size=(samples, WIDTH))
                fields = {"bench": "shards", "layer": g, "samples": samples}
                keys[str(g)] = cache_key(fields)
                store.put(keys[str(g)], LayerFeatures(feats.astype(np.float32), "NC", ids), fields)
        write_json(folder / "done" / f"{unit.id}.json", {"unit": unit.id, "weights": "bench",
                                                          "store": str(store.root),
                                                          "keys": keys})


def large_runs(tmp: Path) -> None:
    print(f"2. simulated large run: {WIDTH}-wide synthetic features, 4 models, linear CKA, "
          f"score blocks of {BLOCK} layers")
    print("   layers  samples  peak above imports  all states in memory  seconds")
    for layers, samples in LARGE:
        folder = tmp / f"large-{layers}-{samples}"
        synthetic_run(folder, layers, samples)
        res = subprocess.run([sys.executable, __file__, "--child", str(folder)], cwd=REPO,
                             check=True, capture_output=True, text=True)
        fig = json.loads(res.stdout.strip().splitlines()[-1])
        held = layers * samples * WIDTH * 8 / 2**20  # float64 centred factor per layer
        print(f"   {layers:6d}  {samples:7d}  {fig['peak_mb'] - fig['base_mb']:15.0f} MB  "
              f"{held:17.0f} MB  {fig['seconds']:7.1f}")


def main() -> None:
    print(describe())
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        sharded_vs_unsharded(Path(tmp))
        large_runs(Path(tmp))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
        print(f"at the end: {load_line()}")
