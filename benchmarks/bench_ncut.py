"""Nystrom normalized cut (zoo.align.nystrom) against the exact cut and against kNN propagation.

1. Accuracy, n = 20,000 x 768, mixture of 10 Gaussian clusters (unit noise, centres drawn with
   scale s), top-10 eigenvectors, same sigma everywhere:
   - exact: dense float64 W (3.2 GB), D^-1/2 W D^-1/2, Lanczos (scipy eigsh);
   - zoo: FPS landmarks + one-shot Nystrom extension (default 2048 landmarks);
   - kNN propagation, the public implementation's scheme, rebuilt here with the same sigma and
     FPS landmarks (ncut-pytorch is not installed): exact eigenvectors of the landmark graph,
     every other node the affinity-weighted mean of its 10 nearest landmarks' rows.
   Reported: mean cosine of the principal angles to the exact top-10 subspace (goal >= 0.99) and
   k-means (k = 10) ARI against the planted labels (goal: >= exact - 0.01). Two separations:
   s = 0.3 (clusters apart) and s = 0.12 (overlapping).
2. Scale, n = 100,000 x 768, 20 eigenvectors: wall time (best of 2) and peak RSS (worst of 2)
   of zoo's ncut and of kNN propagation, each run in a fresh process (VmHWM from /proc).
Accuracy-section times are single runs. The machine may be shared: the load average is printed,
and oversubscribed cores slow multi-threaded LAPACK calls by large, erratic factors.

Run: .venv/bin/python benchmarks/bench_ncut.py [--quick]   (about 10 minutes on 2 cores;
--quick: n = 5,000 and 20,000, a smoke run)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

D, K, N_EIG = 768, 10, 10
KNN = 10
REPEATS = 2  # scale runs per method, each in a fresh process: best time, worst peak memory


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


def knn_propagation(X: np.ndarray, n_eig: int, n_landmarks: int = 2048) -> np.ndarray:
    """The public scheme from scratch: same sigma and FPS landmarks as zoo's ncut, exact
    eigenvectors of the landmark subgraph, spread to all nodes by their kNN landmarks."""
    import torch

    from zoo.align.affinity import Kernel, chunks, estimate_sigma, row_mean, rows_of
    from zoo.align.landmarks import farthest_point_sampling

    kernel = Kernel("rbf", estimate_sigma(X), row_mean(X, "cpu", 8192))
    order = np.sort(farthest_point_sampling(X, n_landmarks, kernel.prepare))
    marks = kernel.prepare(rows_of(X, order, "cpu", torch.float64))
    A = kernel(marks, marks)
    inv = A.sum(1).rsqrt()
    _, vecs = torch.linalg.eigh(A * inv[:, None] * inv[None, :])
    sub = vecs.flip(1)[:, :n_eig].float()
    marks = marks.float()
    out = np.empty((len(X), n_eig), np.float32)
    for start, stop in chunks(len(X), 8192):
        w = kernel(kernel.prepare(rows_of(X, slice(start, stop), "cpu")), marks)
        top, idx = w.topk(KNN, dim=1)
        top = top / top.sum(1, keepdim=True)
        out[start:stop] = (top[..., None] * sub[idx]).sum(1).numpy()
    return out


def ari(vecs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    rows = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    return adjusted_rand_score(labels, KMeans(K, n_init=10, random_state=0).fit_predict(rows))


def accuracy(n: int, spread: float) -> None:
    from zoo.align import exact_ncut, ncut, subspace_cosines

    X, labels = mixture(n, spread)
    t = time.perf_counter()
    ours = ncut(X, n_eig=N_EIG)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    exact = exact_ncut(X, n_eig=N_EIG, sigma=ours.sigma)
    t_exact = time.perf_counter() - t
    t = time.perf_counter()
    knn = knn_propagation(X, N_EIG)
    t_knn = time.perf_counter() - t
    a_exact = ari(exact.eigvecs, labels)
    print(f"\nn={n} d={D} spread={spread} sigma={ours.sigma:.3f} "
          f"landmarks={len(ours.landmarks)}")
    print(f"{'method':<16}{'cos(angles) mean':>18}{'min':>8}{'ARI':>8}{'ARI-exact':>11}"
          f"{'time s':>9}")
    print(f"{'exact':<16}{1.0:>18.4f}{1.0:>8.4f}{a_exact:>8.4f}{0.0:>11.4f}{t_exact:>9.1f}")
    for name, vecs, secs in (("zoo nystrom", ours.eigvecs, t_ours), ("knn propagate", knn, t_knn)):
        cos = subspace_cosines(exact.eigvecs, vecs)
        a = ari(vecs, labels)
        print(f"{name:<16}{cos.mean():>18.4f}{cos.min():>8.4f}{a:>8.4f}{a - a_exact:>11.4f}"
              f"{secs:>9.1f}")
    cos = subspace_cosines(exact.eigvecs, ours.eigvecs).mean()
    verdict = "PASS" if cos >= 0.99 and ari(ours.eigvecs, labels) >= a_exact - 0.01 else "FAIL"
    print(f"goal (cos >= 0.99, ARI >= exact - 0.01): {verdict}")


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc (Linux; reset at exec, unlike
    ru_maxrss, which a child inherits from the process that spawned it)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def scale_child(method: str, n: int) -> None:
    """In a fresh process: build the data, then time one method; print JSON with peak RSS."""
    import torch

    from zoo.align import ncut

    X, _ = mixture(n, 0.3)
    torch.ones(8) @ torch.ones(8)  # the torch runtime (~0.5 GB) counts as "before"
    before = _memory_mb("VmRSS")
    t = time.perf_counter()
    if method == "zoo":
        ncut(X, n_eig=20)
    else:
        knn_propagation(X, 20)
    secs = time.perf_counter() - t
    print(json.dumps({"seconds": secs, "peak_mb": _memory_mb("VmHWM"), "before_mb": before}))


def scale(n: int) -> None:
    runs = {}
    for method in ("zoo", "knn"):
        tries = []
        for _ in range(REPEATS):
            out = subprocess.run([sys.executable, __file__, "--child", method, str(n)],
                                 capture_output=True, text=True, check=True)
            tries.append(json.loads(out.stdout.strip().splitlines()[-1]))
        runs[method] = {"seconds": min(t["seconds"] for t in tries),
                        "peak_mb": max(t["peak_mb"] for t in tries),
                        "before_mb": max(t["before_mb"] for t in tries)}
    data_mb = n * D * 4 / 2**20
    print(f"\nscale: n={n} d={D}, 20 eigenvectors, 2048 landmarks, input {data_mb:.0f} MB "
          "float32")
    print(f"{'method':<16}{'wall s':>9}{'peak RSS MB':>13}{'RSS before MB':>15}  (before: "
          "data + torch loaded)")
    for name, r in runs.items():
        print(f"{name:<16}{r['seconds']:>9.1f}{r['peak_mb']:>13.0f}{r['before_mb']:>15.0f}")
    zoo, knn = runs["zoo"], runs["knn"]
    print(f"zoo / knn: wall time {zoo['seconds'] / knn['seconds']:.2f}x, peak RSS "
          f"{zoo['peak_mb'] / knn['peak_mb']:.2f}x; zoo's peak above data + torch: "
          f"{zoo['peak_mb'] - zoo['before_mb']:.0f} MB")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        scale_child(sys.argv[2], int(sys.argv[3]))
        return
    quick = "--quick" in sys.argv
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores; other work slows timings)")
    for spread in (0.3, 0.12):
        accuracy(5_000 if quick else 20_000, spread)
    scale(20_000 if quick else 100_000)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
