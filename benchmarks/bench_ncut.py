"""Nystrom normalized cut (zoo.align.nystrom) against ncut-pytorch 3.2.0 and the exact cut.

1. Accuracy, n = 20,000 x 768 (--quick: 5,000), a mixture of 10 Gaussian clusters (unit noise,
   centres drawn with scale s), top-10 eigenvectors, sigma from zoo used by the exact cut:
   - exact: dense float64 W, D^-1/2 W D^-1/2, Lanczos (scipy eigsh);
   - zoo at its default 2048 landmarks and at 1024 (FPS landmarks, one-shot Nystrom extension);
   - ncut-pytorch, the public AlignedCut code, as its README calls it:
     `Ncut(n_eig).fit_transform(X)` (its defaults: up to 10,240 FPS landmarks, capped at n/4,
     and eigenvectors spread to the other nodes by their nearest landmarks; its own sigma).
   Reported: mean and worst cosine of the principal angles to the exact top-10 subspace (goal
   >= 0.99) and k-means (k = 10) ARI against the planted labels. Two separations: s = 0.3
   (clusters apart) and s = 0.12 (overlapping).
2. Scale, n = 20,000 and 100,000 (--full adds 1,000,000), 20 eigenvectors: wall time (best of
   2) and peak RSS above the loaded process (worst of 2), each run in a fresh process; zoo's
   time per stage from its progress callback.
ncut-pytorch is an optional benchmark dependency (`pip install -e '.[bench]'`); without it
only zoo's figures are printed. The machine may be shared: the machine (BLAS/LAPACK vendors,
threads) and the load average are printed (benchmarks/machine.py), and ratios are what to quote.

Run: .venv/bin/python benchmarks/bench_ncut.py [--quick] [--full] [--device cuda]
(about 8 minutes on 2 cores; --quick: n = 5,000 and 20,000; --full: about 10 more minutes)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import time

import numpy as np
from machine import describe, load_line  # benchmarks/machine.py

D, K, N_EIG = 768, 10, 10
SCALE_EIG = 20
REPEATS = 2  # scale runs per method, each in a fresh process: best time, worst peak memory
METHODS = {"zoo": 2048, "zoo-1024": 1024}  # zoo runs: name -> landmarks
STAGES = ("landmarks", "basis", "degrees", "graph", "eigenvectors")  # progress tasks, in order


def mixture(n: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points of 10 Gaussian clusters in 768-d (unit noise, centres ~ N(0, spread^2))."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, n)
    centres = rng.normal(size=(K, D)) * spread
    X = np.empty((n, D), np.float32)
    for start in range(0, n, 10_000):
        stop = min(start + 10_000, n)
        X[start:stop] = centres[labels[start:stop]] + rng.normal(size=(stop - start, D))
    return X, labels


def have_reference() -> bool:
    """Whether ncut-pytorch is installed here."""
    return importlib.util.find_spec("ncut_pytorch") is not None


def methods() -> list[str]:
    """The runs to compare: zoo at two landmark counts, and ncut-pytorch when installed."""
    return [*METHODS, *(["ncut-pytorch"] if have_reference() else [])]


def run(method: str, X: np.ndarray, n_eig: int, device: str,
        stages: dict[str, list[float]] | None = None) -> np.ndarray:
    """Eigenvectors (n, n_eig) of one method; zoo's stage times go into `stages`."""
    import torch

    if method == "ncut-pytorch":
        from ncut_pytorch import Ncut

        return Ncut(n_eig=n_eig, device=device).fit_transform(torch.from_numpy(X)).cpu().numpy()
    from zoo.align import ncut

    def progress(task: str, done: int, total: int) -> None:
        if stages is not None:
            stages.setdefault(task, []).append(time.perf_counter())

    return ncut(X, n_eig=n_eig, n_landmarks=METHODS[method], device=device,
                progress=progress).eigvecs


def ari(vecs: np.ndarray, labels: np.ndarray) -> float:
    """k-means (k = 10) on the row-normalised eigenvectors against the planted labels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    rows = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    return adjusted_rand_score(labels, KMeans(K, n_init=10, random_state=0).fit_predict(rows))


def accuracy(n: int, spread: float, device: str) -> None:
    """Each method's top-10 subspace against the exact cut's, on one mixture."""
    from zoo.align import estimate_sigma, exact_ncut, subspace_cosines

    X, labels = mixture(n, spread)
    t = time.perf_counter()
    exact = exact_ncut(X, n_eig=N_EIG, sigma=estimate_sigma(X))
    rows = [("exact", exact.eigvecs, time.perf_counter() - t)]
    for method in methods():
        t = time.perf_counter()
        vecs = run(method, X, N_EIG, device)
        rows.append((method, vecs, time.perf_counter() - t))
    a_exact = ari(exact.eigvecs, labels)
    print(f"\naccuracy: n={n} d={D} spread={spread} sigma={exact.sigma:.3f}, top-{N_EIG} "
          "subspace against the exact cut")
    print(f"{'method':<14}{'cos mean':>10}{'cos min':>9}{'ARI':>8}{'ARI-exact':>11}{'time s':>9}")
    for name, vecs, secs in rows:
        cos = subspace_cosines(exact.eigvecs, vecs)
        a = a_exact if name == "exact" else ari(vecs, labels)
        print(f"{name:<14}{cos.mean():>10.4f}{cos.min():>9.4f}{a:>8.4f}{a - a_exact:>11.4f}"
              f"{secs:>9.1f}")


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc (Linux; reset at exec, unlike
    ru_maxrss, which a child inherits from the process that spawned it)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def scale_child(method: str, n: int, device: str) -> None:
    """In a fresh process: build the data, warm up, time one method; print JSON."""
    import torch

    X, _ = mixture(n, 0.3)
    run(method, X[:2000], 4, device)  # imports and runtime (torch, scipy) count as "before"
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    before = _memory_mb("VmRSS")
    stages: dict[str, list[float]] = {}
    t = time.perf_counter()
    run(method, X, SCALE_EIG, device, stages)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    end = time.perf_counter()
    marks = {task: [times[0] - t, times[-1] - t] for task, times in stages.items()}
    print(json.dumps({"seconds": end - t, "peak_mb": _memory_mb("VmHWM"), "before_mb": before,
                      "marks": marks}))


def stage_line(marks: dict[str, list[float]], seconds: float) -> str:
    """zoo's time per stage from its progress marks (first and last report of each task; a
    task's work ends at its last report, and the landmark basis runs before pass 1)."""
    if not all(task in marks for task in STAGES):
        return "(no progress marks)"
    first, last = marks["landmarks"][0], [marks[task][1] for task in STAGES]
    spans = [("sigma, centre, FPS projection", first), ("landmarks (FPS)", last[0] - first),
             ("landmark basis (Cholesky of A)", last[1] - last[0]),
             ("pass 1 (degrees)", last[2] - last[1]),
             ("pass 2 (C, or its top eigenpairs by Krylov)", last[3] - last[2]),
             ("top eigenpairs of C (G route) + pass 3 (eigenvectors)", last[4] - last[3]),
             ("result", seconds - last[4])]
    return ", ".join(f"{name} {secs:.2f}" for name, secs in spans)


def scale(n: int, device: str) -> None:
    """Time and peak memory of every method at one n, fresh processes."""
    runs = {}
    for method in methods():
        tries = []
        for _ in range(REPEATS):
            out = subprocess.run([sys.executable, __file__, "--child", method, str(n), device],
                                 capture_output=True, text=True, check=True)
            tries.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(tries, key=lambda r: r["seconds"])
        runs[method] = {**best, "peak_mb": max(r["peak_mb"] for r in tries),
                        "before_mb": max(r["before_mb"] for r in tries)}
    print(f"\nscale: n={n} d={D}, {SCALE_EIG} eigenvectors, input {n * D * 4 / 2**20:.0f} MB "
          f"float32, device {device}, {load_line()}")
    print(f"{'method':<14}{'wall s':>9}{'peak RSS MB':>13}{'above loaded MB':>17}")
    for name, r in runs.items():
        print(f"{name:<14}{r['seconds']:>9.2f}{r['peak_mb']:>13.0f}"
              f"{r['peak_mb'] - r['before_mb']:>17.0f}")
    for name in METHODS:
        print(f"{name} stages (s): {stage_line(runs[name]['marks'], runs[name]['seconds'])}")
    if "ncut-pytorch" in runs:
        ref = runs["ncut-pytorch"]
        ref_above = ref["peak_mb"] - ref["before_mb"]
        for name in METHODS:
            r = runs[name]
            print(f"{name} / ncut-pytorch: wall time {r['seconds'] / ref['seconds']:.2f}x, peak "
                  f"above loaded {(r['peak_mb'] - r['before_mb']) / ref_above:.2f}x (aim <= 1)")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        scale_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 5,000 and 20,000 only")
    parser.add_argument("--full", action="store_true", help="add n = 1,000,000 to the scale runs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both methods)")
    args = parser.parse_args()
    ref = (f"ncut-pytorch {importlib.metadata.version('ncut-pytorch')}" if have_reference()
           else "ncut-pytorch not installed (pip install -e '.[bench]'): zoo only")
    print(describe())
    print(ref)
    for spread in (0.3, 0.12):
        accuracy(5_000 if args.quick else 20_000, spread, args.device)
    sizes = [20_000] if args.quick else [20_000, 100_000] + ([1_000_000] if args.full else [])
    for n in sizes:
        scale(n, args.device)
    print(f"at the end: {load_line()}")


if __name__ == "__main__":
    main()
