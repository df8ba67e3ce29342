"""Which machine a benchmark ran on: BLAS/LAPACK vendors, thread counts, load average.

Every script in benchmarks/ prints `describe()` first and `load_line()` at the end, so a figure
is never read without the machine and the load it was measured under (ratios against a baseline
from the same run are what the README quotes).
"""

from __future__ import annotations

import os
import platform
import re


def blas_libraries() -> list[str]:
    """numpy's and torch's BLAS/LAPACK: vendor, version and threads (threadpoolctl for the
    shared libraries it sees; torch's statically linked BLAS from torch's build config)."""
    out = []
    try:
        import numpy  # noqa: F401  (load numpy's BLAS so threadpoolctl sees it)
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            arch = f" {lib['architecture']}" if lib.get("architecture") else ""
            out.append(f"{lib['internal_api']} {lib.get('version') or '?'}{arch} "
                       f"({lib['user_api']}, {lib['num_threads']} threads)")
    except ImportError:
        out.append("threadpoolctl not installed (pip install threadpoolctl): numpy's BLAS "
                   "unknown")
    try:
        import torch

        config = torch.__config__.show()
        blas = re.search(r"BLAS_INFO=(\w+)", config)
        lapack = re.search(r"LAPACK_INFO=(\w+)", config)
        mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
        out.append(f"torch {torch.__version__}: BLAS {blas.group(1) if blas else '?'}"
                   f"{' ' + mkl.group(1) if mkl and blas and blas.group(1) == 'mkl' else ''}, "
                   f"LAPACK {lapack.group(1) if lapack else '?'}, "
                   f"{torch.get_num_threads()} intra-op threads")
    except ImportError:
        pass
    return out


def load_line() -> str:
    """The 1/5/15-minute load averages against the core count."""
    one, five, fifteen = os.getloadavg()
    return (f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on "
            f"{os.cpu_count()} cores")


def describe() -> str:
    """A few lines naming the machine: CPU, BLAS/LAPACK vendors, threads, load."""
    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                          "OPENBLAS_NUM_THREADS")
                        if k in os.environ) or "no thread variables set"
    lines = [f"machine: {platform.machine()} {_cpu_model()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; {threads}"]
    lines += [f"  {lib}" for lib in blas_libraries()]
    lines.append(f"  {load_line()}")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    print(describe())
