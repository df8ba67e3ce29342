"""Learned linear channel alignment (AlignedCut): one linear map per (model, layer) into a shared
D-dimensional space, trained so that the summed, image-pooled aligned features predict a shared
per-image target (brain responses, or a reference layer's features) through one linear readout.

Regularisers, each averaged over layers and computed on a seeded sample of tokens per step:
- eigen-constraint: the top normalized-cut eigenvectors V of a layer's token graph before
  alignment must stay top eigenvectors after it. The loss is the Ky Fan gap
  (sum of the top-k eigenvalues of N_after - trace(V^T N_after V)) / k, which is >= 0, zero
  exactly when V spans the top eigenspace, and needs eigenvalue gradients only (stable where
  eigenvector gradients blow up at repeated eigenvalues);
- zero-centring: ||mean f||^2 / mean ||f||^2 of the aligned tokens f;
- covariance: mean squared off-diagonal correlation between aligned channels.
Training is full-batch Adam with early stopping on the held-out images' target loss; the best
epoch's maps are returned.

What is shared, exactly: the readout, applied to the SUM over layers of the image-pooled aligned
features. Nothing ties one layer's aligned coordinates to another's: any split of that sum
between the layers fits the target equally well, and the regularisers act on each layer alone.
So coordinate c of one layer need not mean what coordinate c of another does: a readout fitted
on one layer's aligned features can predict the target from another layer's worse than its
mean (R^2 down to -1.95 measured; tests/test_numbers_alignment.py plants a case). The maps
give one space for a joint cut, whose eigenvectors follow the data of all layers together; a
per-coordinate comparison of layers in it is not supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from zoo.align.maps import LinearMap
from zoo.align.pairwise import split_rows
from zoo.errors import ZooError
from zoo.progress import Progress

if TYPE_CHECKING:
    import torch

TOKEN_POOL = 16384  # training tokens per layer kept for the regularisers


@dataclass(frozen=True)
class AlignConfig:
    """Training settings; the three weights scale the regularisers against the target loss."""

    dim: int = 32
    eigen_weight: float = 1.0
    zero_weight: float = 0.1
    cov_weight: float = 0.1
    n_eig: int = 8
    tokens: int = 256
    lr: float = 1e-2
    epochs: int = 500
    patience: int = 25
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class AlignmentRun:
    """The maps of the best epoch, per-epoch losses and the held-out R^2 of the target (NaN when
    it is undefined: a single held-out image has no variance to explain)."""

    maps: dict[str, LinearMap]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    val_r2: float = float("nan")


def _normalised_affinity(x: torch.Tensor) -> torch.Tensor:
    """D^-1/2 W D^-1/2 of the token graph, RBF with the median-distance bandwidth (held fixed
    for the gradient, so scaling the features does not change the graph)."""
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    sigma2 = d2.detach().median().clamp_min(1e-12)
    w = (-d2 / (2.0 * sigma2)).exp()
    inv = w.sum(1).rsqrt()
    return w * inv[:, None] * inv[None, :]


def eigen_gap(after: torch.Tensor, before_vecs: torch.Tensor) -> torch.Tensor:
    """Ky Fan gap of the top-k subspace `before_vecs` in the graph of `after` tokens."""
    import torch

    n_after = _normalised_affinity(after)
    k = before_vecs.shape[1]
    top = torch.linalg.eigvalsh(n_after)[-k:].sum()
    return (top - (before_vecs * (n_after @ before_vecs)).sum()) / k


def centring_loss(f: torch.Tensor) -> torch.Tensor:
    """Squared norm of the mean aligned token relative to the mean squared norm."""
    return (f.mean(0) ** 2).sum() / (f * f).sum(1).mean().clamp_min(1e-12)


def covariance_loss(f: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal correlation between aligned channels."""
    import torch

    c = torch.cov(f.T)
    std = c.diagonal().clamp_min(1e-12).sqrt()
    corr = c / std[:, None] / std[None, :]
    d = corr.shape[0]
    return ((corr - torch.diag(corr.diagonal())) ** 2).sum() / max(d * (d - 1), 1)


def _check_inputs(features: Mapping[str, np.ndarray], target: np.ndarray,
                  config: AlignConfig) -> None:
    if not features:
        raise ZooError("no layers to align")
    n = len(target)
    for key, f in features.items():
        if f.ndim != 3 or len(f) != n:
            raise ZooError(f"{key}: features must be (images, tokens, channels) with {n} images, "
                           f"got {f.shape}")
    if target.ndim != 2:
        raise ZooError(f"target must be (images, values), got {target.shape}")
    if config.dim < 2 or config.n_eig < 1 or config.tokens <= config.n_eig:
        raise ZooError("need dim >= 2, n_eig >= 1 and tokens > n_eig")


class _Layer:
    """One layer: its image-pooled features and a seeded pool of training tokens (both
    standardised), and its trainable map. Memory is O(images x C + TOKEN_POOL x C) whatever the
    number of tokens per image, and `data` may be a memmap."""

    def __init__(self, data: np.ndarray, train: np.ndarray, dim: int, device: str,
                 rng: np.random.Generator) -> None:
        import torch

        per_image = data.shape[1]
        picks = np.sort(rng.choice(len(train) * per_image,
                                   min(TOKEN_POOL, len(train) * per_image), replace=False))
        pool = np.asarray(data[train[picks // per_image], picks % per_image], np.float64)
        mean = pool.mean(0)
        centred = pool - mean
        self.scale = float(np.sqrt((centred ** 2).sum(1).mean()))
        if not self.scale > 0:
            raise ZooError("a layer's features are constant over the training images; "
                           "nothing to align")
        self.mean = mean
        pooled = np.stack([np.asarray(data[i], np.float64).mean(0) for i in range(len(data))])
        self.pooled = torch.from_numpy((pooled - mean) / self.scale).float().to(device)  # (N, C)
        self.tokens = torch.from_numpy(centred / self.scale).float().to(device)  # (pool, C)
        _, vecs = np.linalg.eigh(centred.T @ centred)
        basis = torch.from_numpy(vecs[:, ::-1][:, :dim].copy()).float()  # top principal axes
        self.weight = torch.zeros(data.shape[-1], dim, device=device)
        self.weight[:, :basis.shape[1]] = basis.to(device)
        self.weight.requires_grad_()
        self.bias = torch.zeros(dim, device=device, requires_grad=True)

    def sample(self, count: int, rng: np.random.Generator) -> torch.Tensor:
        """`count` distinct tokens from the pool (standardised)."""
        import torch

        pick = rng.choice(len(self.tokens), min(count, len(self.tokens)), replace=False)
        return self.tokens[torch.as_tensor(pick, device=self.tokens.device)]

    def linear_map(self) -> LinearMap:
        """The trained map on raw features: ((x - mean) / scale) @ W + b folded into one."""
        import torch

        w = self.weight.detach().cpu().double() / self.scale
        b = self.bias.detach().cpu().double() - torch.from_numpy(self.mean) @ w
        return LinearMap(w.float().numpy(), b.float().numpy())


def _regularisers(layer: _Layer, tokens: torch.Tensor, n_eig: int) -> dict[str, torch.Tensor]:
    """The three regularisers of one layer on one token sample."""
    import torch

    with torch.no_grad():
        _, vecs = torch.linalg.eigh(_normalised_affinity(tokens.double()))
        before = vecs[:, -n_eig:].float()
    aligned = tokens @ layer.weight + layer.bias
    return {"eigen": eigen_gap(aligned, before), "zero": centring_loss(aligned),
            "cov": covariance_loss(aligned)}


def train_alignment(features: Mapping[str, np.ndarray], target: np.ndarray,
                    config: AlignConfig = AlignConfig(), device: str = "cpu",
                    progress: Progress | None = None) -> AlignmentRun:
    """Train one map per key of `features` ((images, tokens, channels) arrays, rows paired with
    `target` (images, values) by the caller) and return the best epoch's maps."""
    import torch

    target = np.asarray(target, np.float64)
    _check_inputs(features, target, config)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train, val = split_rows(len(target), config.val_fraction, config.seed)
    mu, sd = target[train].mean(0), target[train].std(0)
    y = torch.from_numpy((target - mu) / np.where(sd > 0, sd, 1.0)).float().to(device)
    if len(train) * min(f.shape[1] for f in features.values()) <= config.n_eig:
        raise ZooError(f"too few training tokens for the top {config.n_eig} eigenvectors; use "
                       "more images or a smaller n_eig")
    layers = {k: _Layer(f, train, config.dim, device, rng) for k, f in features.items()}
    readout = torch.zeros(config.dim, y.shape[1], device=device, requires_grad=True)
    offset = torch.zeros(y.shape[1], device=device, requires_grad=True)
    params = [readout, offset] + [p for lay in layers.values() for p in (lay.weight, lay.bias)]
    optim = torch.optim.Adam(params, lr=config.lr)
    tr, va = torch.as_tensor(train, device=device), torch.as_tensor(val, device=device)

    def predict(rows: torch.Tensor) -> torch.Tensor:
        summed = sum(lay.pooled[rows] @ lay.weight + lay.bias for lay in layers.values())
        return summed @ readout + offset

    run = AlignmentRun({k: lay.linear_map() for k, lay in layers.items()})
    best, since = float("inf"), 0
    for epoch in range(1, config.epochs + 1):
        optim.zero_grad()
        fit = ((predict(tr) - y[tr]) ** 2).mean()
        parts = [_regularisers(lay, lay.sample(config.tokens, rng), config.n_eig)
                 for lay in layers.values()]
        terms = {k: torch.stack([p[k] for p in parts]).mean() for k in parts[0]}
        loss = (fit + config.eigen_weight * terms["eigen"] + config.zero_weight * terms["zero"]
                + config.cov_weight * terms["cov"])
        loss.backward()
        optim.step()
        with torch.no_grad():
            pred, truth = predict(va), y[va]
            val_loss = float(((pred - truth) ** 2).mean())
            spread = float(((truth - truth.mean(0)) ** 2).sum())  # 0 for one held-out image
            error = float(((pred - truth) ** 2).sum())
            val_r2 = 1.0 - error / spread if spread > 0 else float("nan")
        run.history.append({"epoch": epoch, "loss": loss.item(), "target": fit.item(),
                            **{k: v.item() for k, v in terms.items()},
                            "val_target": val_loss, "val_r2": val_r2})
        if val_loss < best:
            best, since = val_loss, 0
            run.maps = {k: lay.linear_map() for k, lay in layers.items()}
            run.best_epoch, run.val_r2 = epoch, val_r2
        else:
            since += 1
        if progress:
            progress("align", epoch, config.epochs)
        if since >= config.patience:
            break
    return run
