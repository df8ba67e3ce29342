"""Peak memory of `zoo dissect` as the number of images grows: streamed vs held in memory.

Each size runs in a fresh subprocess (so its peak resident set is its own) that dissects every
spatial layer of a random-init tiny ResNet-50 on `synthetic:N` concepts. "streamed" is
`zoo.concepts.dissect_model` as it runs now: one layer at a time, written to a (temporary)
feature cache batch by batch and read back as a memory map chunk by chunk. "in memory" is the
same dissection with each layer's features extracted into an in-memory array first (what
dissect_model did before). Prints, per N, the child's peak RSS (ru_maxrss), its RSS once the
model and concepts are loaded, the growth ratio from the smallest N, and the layer's feature
size for scale.
Run: .venv/bin/python benchmarks/bench_dissect_memory.py  [--sizes 32 128 512]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from machine import describe, load_line  # benchmarks/machine.py

CHILD = """
import json, resource, sys
from zoo.api import load
from zoo.concepts import dissect, open_concepts
from zoo.concepts.pipeline import dissect_model
from zoo.features.extraction import extract

n, mode = int(sys.argv[1]), sys.argv[2]
model = load("resnet-ssl", random_init=True, tiny=True)
concepts = open_concepts(f"synthetic:{n}")
data = concepts.dataset()
layers = [k for k, i in model.layers.items() if i.layout in ("NCHW", "NLC")]
concepts.labels(0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "streamed":
    dissect_model(model, f"synthetic:{n}", layers, cache=False, batch_size=16)
    biggest = 0
else:
    biggest = 0
    for name in layers:
        feats = extract(model, data, [name], "none", 16, None)[name]
        biggest = max(biggest, feats.data.nbytes)
        dissect(feats, concepts)
        del feats
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_kb": peak, "biggest": biggest}))
"""


def run(n: int, mode: str) -> dict:
    """One child process: its RSS after setup and its peak, in MiB."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), mode], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512])
    args = parser.parse_args()
    print(describe())
    print("resnet-ssl tiny (random init, 64 px), every spatial layer, synthetic:N concepts")
    print(f"{'N':>5} {'mode':>9} {'setup MiB':>10} {'peak MiB':>9} {'peak-setup':>11} "
          f"{'largest layer MiB':>18}")
    first: dict[str, float] = {}
    for n in args.sizes:
        for mode in ("streamed", "in-memory"):
            r = run(n, mode)
            base, peak = r["base_kb"] / 1024, r["peak_kb"] / 1024
            first.setdefault(mode, peak - base)
            size = f"{r['biggest'] / 2**20:.1f}" if r["biggest"] else "-"
            print(f"{n:>5} {mode:>9} {base:>10.0f} {peak:>9.0f} {peak - base:>11.0f} "
                  f"{size:>18}  growth x{(peak - base) / max(first[mode], 1):.2f}")


if __name__ == "__main__":
    main()
    print(f"at the end: {load_line()}")
