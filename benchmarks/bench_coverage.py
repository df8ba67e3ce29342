"""Coverage of the 95% confidence intervals (`zoo.metrics.stats.confidence_intervals`) on planted
populations with a closed-form population CKA (`zoo.metrics.coverage`): isotropic, anisotropic,
low-rank and Student-t(3) features, cka and cka-debiased, n = 100 and 400, width 16.

Prints, per row, the share of the given intervals that contained the population value (binomial
standard error about 0.007 at 1000 draws and coverage 0.95) and the share of draws that got an
interval (the rest are refused with a reason: heavy tails, or biased CKA's baseline).

Run: .venv/bin/python benchmarks/bench_coverage.py [DRAWS]  (default 1000; about 20 minutes on
2 idle cores)
"""

from __future__ import annotations

import os
import sys
import time

from zoo.metrics.coverage import POPULATIONS, coverage

WIDTH = 16


def main(draws: int) -> None:
    print(f"draws {draws}, width {WIDTH}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'metric':<14}{'population':<13}{'n':>5}{'coverage':>10}{'given':>8}")
    for metric in ("cka-debiased", "cka"):
        for name in POPULATIONS:
            for n in (100, 400):
                start = time.time()
                covered, given = coverage(metric, name, n, WIDTH, draws)
                print(f"{metric:<14}{name:<13}{n:>5}{covered:>10.3f}{given:>8.3f}"
                      f"   ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
