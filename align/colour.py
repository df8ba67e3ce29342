"""Aligned colours: a 3-D (or 2-D) t-SNE of the eigenvectors on landmarks, extended to all nodes,
mapped into the RGB cube. One embedding for the whole joint graph, so one colour means one
concept across images, layers and models.

Eigenvector rows are L2-normalised first (a node's concept is the direction of its row; the
length follows its degree, which would pull low-degree nodes of every cluster together).
t-SNE runs only on the first TSNE_POINTS landmarks (FPS order, so any prefix still covers the
cloud). Every node
then takes a Gaussian-weighted average of the embeddings of its nearest landmarks in eigenvector
space, with one bandwidth for all nodes: the typical spacing between landmarks.
"""

from __future__ import annotations

import numpy as np

from zoo.align.affinity import chunks
from zoo.errors import ZooError
from zoo.progress import Progress

TSNE_POINTS = 300  # landmarks embedded by exact t-SNE (O(n^2) per iteration)
NEIGHBOURS = 8


def embed_landmarks(eigvecs: np.ndarray, landmarks: np.ndarray, n_dims: int = 3, seed: int = 0,
                    perplexity: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """t-SNE of the eigenvector rows of (at most TSNE_POINTS) landmarks: (indices, coords)."""
    from zoo.align.tsne import tsne

    if n_dims not in (2, 3):
        raise ZooError(f"colour embeddings are 2-D or 3-D, got n_dims={n_dims}")
    marks = np.asarray(landmarks)[:TSNE_POINTS]
    if len(marks) < 5:
        raise ZooError(f"t-SNE needs at least 5 landmarks, got {len(marks)}; use more nodes")
    return marks, tsne(eigvecs[marks], n_dims, min(perplexity, (len(marks) - 1) / 3), seed)


def extend_embedding(eigvecs: np.ndarray, marks: np.ndarray, coords: np.ndarray,
                     chunk: int = 8192, progress: Progress | None = None) -> np.ndarray:
    """Coordinates for every node: Gaussian-weighted mean over its NEIGHBOURS nearest landmarks
    (bandwidth: the median distance from a landmark to its nearest other landmark)."""
    import torch

    ref = torch.from_numpy(np.asarray(eigvecs[marks], np.float32))
    target = torch.from_numpy(np.asarray(coords, np.float32))
    spacing = float(torch.cdist(ref, ref).fill_diagonal_(float("inf")).min(1).values.median())
    if not spacing > 0:
        raise ZooError("most landmarks share identical eigenvector rows; the eigenvectors carry "
                       "no structure to colour (check the features or use more landmarks)")
    h2 = spacing * spacing
    k = min(NEIGHBOURS, len(marks))
    n = len(eigvecs)
    out = np.empty((n, coords.shape[1]), dtype=np.float32)
    starts = list(chunks(n, chunk))
    for i, (start, stop) in enumerate(starts):
        rows = torch.from_numpy(np.asarray(eigvecs[start:stop], np.float32))
        d2, idx = (torch.cdist(rows, ref) ** 2).topk(k, dim=1, largest=False)
        w = torch.softmax(-d2 / h2, dim=1)
        out[start:stop] = (w[..., None] * target[idx]).sum(1).numpy()
        if progress:
            progress("colours", i + 1, len(starts))
    return out


def to_rgb(coords: np.ndarray, quantile: float = 0.01) -> np.ndarray:
    """Each axis clipped to its [q, 1 - q] quantiles and scaled to [0, 1]: (n, 3) RGB."""
    if not 0.0 <= quantile < 0.5:
        raise ZooError(f"quantile must be in [0, 0.5), got {quantile}")
    lo, hi = np.quantile(coords, [quantile, 1.0 - quantile], axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((coords - lo) / span, 0.0, 1.0).astype(np.float32)


def unit_rows(eigvecs: np.ndarray) -> np.ndarray:
    """Eigenvector rows scaled to unit length (float32)."""
    rows = np.asarray(eigvecs, np.float32)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def embedding(eigvecs: np.ndarray, landmarks: np.ndarray, n_dims: int, seed: int = 0,
              progress: Progress | None = None) -> np.ndarray:
    """t-SNE coordinates (n, n_dims) for every node: landmarks embedded, the rest extended."""
    rows = unit_rows(eigvecs)
    marks, coords = embed_landmarks(rows, landmarks, n_dims, seed)
    return extend_embedding(rows, marks, coords, progress=progress)


def aligned_colours(eigvecs: np.ndarray, landmarks: np.ndarray, seed: int = 0,
                   quantile: float = 0.01, progress: Progress | None = None) -> np.ndarray:
    """RGB in [0, 1] (n, 3) for every node from a 3-D t-SNE of the eigenvectors on landmarks."""
    return to_rgb(embedding(eigvecs, landmarks, 3, seed, progress), quantile)


def trajectory_coords(eigvecs: np.ndarray, landmarks: np.ndarray, seed: int = 0,
                      progress: Progress | None = None) -> np.ndarray:
    """2-D t-SNE coordinates (n, 2) for every node, to trace pixels from layer to layer."""
    return embedding(eigvecs, landmarks, 2, seed, progress)
