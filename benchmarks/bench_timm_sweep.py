"""Sweep timm's registry through zoo's generic `timm/` family and print how many pass.

Two tiers, both at random init and offline:
  declare: `zoo info`'s layer declaration (built on the meta device, shapes from one meta
           forward, a CPU build where an op has no meta kernel) for every architecture;
  check:   `zoo check` (one fixed-seed batch of 1 image at the model's input size, `tiny=True`:
           depth 2 where the architecture takes a depth) for every K-th architecture (`--every`)
           up to `--max-params` million parameters (larger ones are counted as skipped).

    python benchmarks/bench_timm_sweep.py --tier declare --out sweep-declare.json
    python benchmarks/bench_timm_sweep.py --tier check --every 10 --out sweep-check.json

Prints "N of M timm architectures pass" and each failure with its first problem.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import time
import warnings


class Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise Timeout


def one(arch: str, tier: str, max_params: float) -> tuple[str, str]:
    """('pass'|'fail'|'skip', reason) for one architecture."""
    import timm
    import torch

    from zoo.registry.host import get_registry

    spec = get_registry().model(f"timm/{arch}")
    if tier == "declare":
        layers = spec.layers()
        return ("pass", f"{len(layers)} layers") if layers else ("fail", "no layers")
    with torch.device("meta"):
        params = sum(p.numel() for p in timm.create_model(arch).parameters()) / 1e6
    if params > max_params:
        return "skip", f"{params:.0f}M params > {max_params:g}M"
    from zoo.model.conformance import check_model

    report = check_model(f"timm/{arch}", batch=1, tiny=True)
    return ("pass", "") if report.ok else ("fail", report.failures()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=("declare", "check"), default="declare")
    parser.add_argument("--every", type=int, default=1, help="every K-th architecture")
    parser.add_argument("--max-params", type=float, default=100.0, help="millions (check)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per architecture")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: tiny builds gain nothing from more on a shared "
                             "CPU, and lose a lot)")
    parser.add_argument("--out", default="", help="write per-architecture results (JSON)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import os

    import timm
    import torch

    torch.set_num_threads(args.threads)

    archs = timm.list_models()[::args.every]
    signal.signal(signal.SIGALRM, _alarm)
    results: dict[str, tuple[str, str]] = {}
    start = time.perf_counter()
    for i, arch in enumerate(archs):
        signal.alarm(args.timeout)
        try:
            results[arch] = one(arch, args.tier, args.max_params)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the sweep
            if isinstance(exc, Timeout) or isinstance(exc.__cause__, Timeout):
                results[arch] = ("skip", f"over {args.timeout} s")
            else:
                results[arch] = ("fail", f"{type(exc).__name__}: "
                                         f"{' '.join(str(exc).split())[:200]}")
        finally:
            signal.alarm(0)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(archs)} done", flush=True)
    counts = collections.Counter(status for status, _ in results.values())
    tried = counts["pass"] + counts["fail"]
    print(f"timm {timm.__version__}, tier {args.tier}, every {args.every}: "
          f"{counts['pass']} of {tried} timm architectures pass "
          f"({counts['skip']} skipped; {len(timm.list_models())} registered; "
          f"{time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f})")
    for arch, (status, reason) in results.items():
        if status != "pass":
            print(f"  {status}: {arch}: {reason}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({a: {"status": s, "reason": r} for a, (s, r) in results.items()}, f,
                      indent=1)


if __name__ == "__main__":
    main()
