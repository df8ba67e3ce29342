"""The networks and data of `zoo validate`: generated grating images and a small plain CNN,
trained from fixed seeds, normally or with one design change (random labels, a colour-dot
shortcut, noise augmentation), then read out layer by layer on held-out images.

Images are S x S RGB oriented sinusoidal gratings; the class is the orientation (5 values)
crossed with the spatial frequency (2 values), with orientation and frequency jitter, a random
phase, contrast and colour tint, and pixel noise, so the task needs oriented filters and
is not solved by colour. Everything is seeded: the same settings give the same networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

CLASSES = 10
ORIENTATIONS = 5
FREQUENCIES = (0.14, 0.28)  # cycles per pixel
DESIGNS = ("normal", "random-labels", "shortcut", "noise")
SHORTCUT_PALETTE = np.random.default_rng(12345).uniform(0.0, 1.0, size=(CLASSES, 3))
NOISE_AUGMENTATION = 0.4  # std of the Gaussian noise added to every training batch ("noise")
TRAIN_SEED, EVAL_SEED = 1, 2  # data seeds (networks use their own)
PIXEL_NOISE = 0.45  # std of the pixel noise in every image: a task that needs the whole depth


@dataclass(frozen=True)
class NetConfig:
    """Size of the data and networks: `quick` fits a CPU in minutes, larger settings a GPU."""

    size: int = 8
    width: int = 128  # narrower nets differ more across seeds (cka's layer identification
    # at size 16, whole maps: 67% at width 32, 90% at width 64)
    depth: int = 6
    train: int = 2048
    eval: int = 500
    epochs: int = 6
    batch: int = 64
    lr: float = 2e-3
    pool: int = 0  # each layer read out as its pool x pool average-pooled map, flattened; 0:
    # the whole map, as Kornblith et al. 2019 compare conv layers (cka 92-96% across seeds
    # here, 88-93% with 2 x 2 maps)
    noise: float = PIXEL_NOISE  # pixel noise of the images (at size 16, width 64, whole maps:
    # cka 90% with noise 0.15, 93% with 0.45; noisier images make every layer do work)

    downsample: int = 3  # stride 2 at every `downsample`-th layer, starting with the first

    def strides(self) -> tuple[int, ...]:
        """Stride 2 at layers 0, downsample, 2 x downsample, ...; 1 elsewhere."""
        return tuple(2 if i % self.downsample == 0 else 1 for i in range(self.depth))

    def layer_names(self) -> list[str]:
        return [f"conv{i + 1}" for i in range(self.depth)]


def grating_images(n: int, size: int, seed: int, noise: float = PIXEL_NOISE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, size, size) float32 images around 0.5 with Gaussian pixel noise of std `noise`,
    and their (n,) class labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(CLASSES, size=n)
    theta = (labels % ORIENTATIONS) * np.pi / ORIENTATIONS + rng.normal(0.0, 0.12, size=n)
    freq = np.asarray(FREQUENCIES)[labels // ORIENTATIONS] * np.exp(rng.normal(0.0, 0.08, n))
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    yy, xx = np.mgrid[0:size, 0:size]
    arg = (2 * np.pi * freq[:, None, None] * (xx * np.cos(theta)[:, None, None]
                                               + yy * np.sin(theta)[:, None, None])
           + phase[:, None, None])
    contrast = rng.uniform(0.2, 0.5, size=n)[:, None, None, None]
    tint = rng.uniform(0.3, 1.0, size=(n, 3))[:, :, None, None]
    images = 0.5 + contrast * np.cos(arg)[:, None] * tint
    images = images + rng.normal(0.0, noise, size=images.shape)
    return images.astype(np.float32), labels


def with_shortcut(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A 3 x 3 dot in the top-left corner coloured by the class: a perfect shortcut."""
    out = images.copy()
    out[:, :, :3, :3] = SHORTCUT_PALETTE[labels][:, :, None, None]
    return out


def build(cfg: NetConfig, seed: int) -> Any:
    """A plain CNN: `depth` x (3x3 conv, batch norm, ReLU), global average pool, linear."""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [3] + [cfg.width] * cfg.depth
            self.convs = nn.ModuleList(
                nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, stride=s, padding=1),
                              nn.BatchNorm2d(chans[i + 1]), nn.ReLU())
                for i, s in enumerate(cfg.strides()))
            self.fc = nn.Linear(cfg.width, CLASSES)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            maps = []
            for conv in self.convs:
                x = conv(x)
                maps.append(x)
            return self.fc(x.mean(dim=(2, 3))), maps

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN()


def train(cfg: NetConfig, design: str, seed: int, device: str = "cpu") -> Any:
    """One network trained from `seed` with `design` (see DESIGNS) on the generated data."""
    import torch
    from torch import nn

    images, labels = grating_images(cfg.train, cfg.size, TRAIN_SEED, cfg.noise)
    rng = np.random.default_rng(10_000 + seed)
    if design == "random-labels":
        labels = rng.permutation(labels)
    elif design == "shortcut":
        images = with_shortcut(images, labels)
    net = build(cfg, seed).to(device).train()
    x, y = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen).to(device)
        for start in range(0, len(x), cfg.batch):
            idx = order[start:start + cfg.batch]
            batch = x[idx]
            if design == "noise":
                batch = batch + NOISE_AUGMENTATION * torch.randn(batch.shape, generator=gen
                                                                 ).to(device)
            loss = nn.functional.cross_entropy(net(batch)[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def read_out(net: Any, cfg: NetConfig, device: str = "cpu"
             ) -> tuple[list[np.ndarray], np.ndarray, float]:
    """(one float64 (eval, features) matrix per conv layer: its map average-pooled to pool x
    pool (pool 0: as is), flattened; the (eval, classes) logits; accuracy) on the held-out
    clean images (no shortcut, no noise)."""
    import torch

    images, labels = grating_images(cfg.eval, cfg.size, EVAL_SEED, cfg.noise)
    with torch.no_grad():
        logits, maps = net(torch.from_numpy(images).to(device))
    pooled = ((torch.nn.functional.adaptive_avg_pool2d(m, cfg.pool) if cfg.pool else m
               ).flatten(1) for m in maps)
    layers = [p.double().cpu().numpy() for p in pooled]
    logits = logits.double().cpu().numpy()
    return layers, logits, float(np.mean(logits.argmax(axis=1) == labels))
