"""Regenerate the README's demo numbers and images from a fresh `zoo demo` run.

Runs `python -m zoo demo` in a new process with an empty feature cache (so it trains, as a first
run on a fresh clone does), then writes docs/demo_results.json, docs/images/demo_heatmap_cka.png
and docs/images/demo_activations.png, and the README's tables between the demo-results markers
(`zoo.study.demo.readme_block`). Prints the wall time and the load average it ran under.
tests/test_demo_results.py checks that the README and the json agree (fast) and that a fresh
demo run reproduces the json (slow).
Run: .venv/bin/python docs/update_demo.py  [--keep-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fresh_run(out: Path, cache: Path | None) -> float:
    """`zoo demo --out OUT` in a new process (own cache unless None); its wall time."""
    env = dict(os.environ)
    if cache is not None:
        env["ZOO_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo", "demo", "--out", str(out)], cwd=REPO, env=env,
                   check=True)
    return time.perf_counter() - t0


def update_readme(readme: Path, block: str) -> None:
    """Replace the text between the demo-results markers by `block`."""
    from zoo.study.demo import README_END, README_START

    text = readme.read_text()
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not (start and end):
        raise SystemExit(f"{readme} has no demo-results markers")
    readme.write_text(head + block + tail)


def main() -> None:
    from zoo.study.demo import readme_block

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-cache", action="store_true", help="use ZOO_CACHE_DIR as it is "
                        "(reuses trained checkpoints) instead of an empty cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-demo-") as tmp:
        out = Path(tmp) / "demo"
        load = os.getloadavg()
        seconds = fresh_run(out, None if args.keep_cache else Path(tmp) / "cache")
        results = json.loads((out / "demo_results.json").read_text())
        (REPO / "docs" / "demo_results.json").write_text(json.dumps(results, indent=1) + "\n")
        for name in ("heatmap_cka.png", "activations.png"):
            shutil.copyfile(out / name, REPO / "docs" / "images" / f"demo_{name}")
    update_readme(REPO / "README.md", readme_block(results))
    print(f"zoo demo ({'cached' if args.keep_cache else 'first run'}): {seconds:.0f} s; load "
          f"average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "cores")


if __name__ == "__main__":
    main()
