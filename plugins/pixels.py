"""`pixels`: low-level image statistics as a reference "model", one layer per statistic.

Any layer of any model can be compared against what the pixels alone carry (colour, luminance
and contrast, spatial frequency, oriented Gabor energy, edges), the baseline that explains much
of what early layers share. No parameters: the same images always give the same numbers. Images
arrive as RGB in [0, 1] (mean 0, std 1: no normalisation); luminance is Rec. 709
(0.2126 R + 0.7152 G + 0.0722 B).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl

VERSION = "pixels:v1"  # the fingerprint: change it whenever a statistic changes (cache keys)
SIZE = 224
INPUT = InputConfig(size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
HIST_BINS = 8
LUMA = (0.2126, 0.7152, 0.0722)
PERCENTILES = (0.05, 0.5, 0.95)
BANDS = 8  # log-spaced radial frequency bands from 1 cycle per image to Nyquist
GABOR_FREQS = (0.25, 0.125, 0.0625)  # cycles per pixel: one octave apart
GABOR_ORIENTS = 4
EDGE_STEPS = (0.05, 0.1, 0.2)  # luminance step heights counted as edges

# name, what it holds, width
STATISTICS = (
    ("colour_hist", f"histogram of each RGB channel, {HIST_BINS} bins on [0, 1] (fractions)",
     3 * HIST_BINS),
    ("colour_moments", "mean and standard deviation of each RGB channel", 6),
    ("luminance", "mean luminance, RMS contrast (std), 5th/50th/95th percentiles", 5),
    ("spectrum", f"log10 power of the mean-removed luminance in {BANDS} log-spaced radial "
     "frequency bands", BANDS),
    ("gabor", f"mean energy |complex Gabor response|^2 of luminance, {len(GABOR_FREQS)} "
     f"frequencies x {GABOR_ORIENTS} orientations (log10)", len(GABOR_FREQS) * GABOR_ORIENTS),
    ("edges", "mean Sobel gradient magnitude and the fraction of pixels whose gradient exceeds "
     f"luminance steps {', '.join(map(str, EDGE_STEPS))}", 1 + len(EDGE_STEPS)),
)


def layers() -> list[LayerInfo]:
    """One NC layer per statistic, all at depth 0 (they are parallel, not stacked)."""
    return [LayerInfo(name, name, "stem", "NC", width, None, 0.0) for name, _, width in STATISTICS]


def _build(size: int) -> Any:
    """The statistics as an nn.Module whose submodules are the layers (hooked like any model)."""
    import math

    import torch
    from torch import nn

    luma = torch.tensor(LUMA).view(1, 3, 1, 1)

    def luminance(x: torch.Tensor) -> torch.Tensor:
        return (x * luma.to(x)).sum(dim=1)

    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.fftfreq(size).view(1, -1)
    radius = torch.sqrt(fx ** 2 + fy ** 2)
    edges = torch.logspace(math.log10(1.0 / size), math.log10(0.5), BANDS + 1)
    band = torch.bucketize(radius, edges) - 1  # -1: DC and below 1 cycle; BANDS: corners
    # Complex Gabor filters defined in the frequency domain: a Gaussian bump at (f cos t, f sin t)
    # with one-octave bandwidth (sigma_f = f / 3), i.e. an even/odd quadrature pair in space.
    gabors = torch.stack([torch.exp(-((fx - f * math.cos(t)) ** 2 + (fy - f * math.sin(t)) ** 2)
                                    / (2 * (f / 3) ** 2))
                          for f in GABOR_FREQS
                          for t in (math.pi * k / GABOR_ORIENTS for k in range(GABOR_ORIENTS))])
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0

    class Stat(nn.Module):
        def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fn(x.float())

    def colour_hist(x: torch.Tensor) -> torch.Tensor:
        bins = (x.clamp(0, 1) * HIST_BINS).long().clamp(max=HIST_BINS - 1).flatten(2)
        counts = torch.zeros(len(x), 3, HIST_BINS, device=x.device)
        counts.scatter_add_(2, bins, torch.ones_like(bins, dtype=counts.dtype))
        return (counts / bins.shape[2]).flatten(1)

    def colour_moments(x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        return torch.cat([flat.mean(2), flat.std(2, unbiased=False)], dim=1)

    def luminance_stats(x: torch.Tensor) -> torch.Tensor:
        y = luminance(x).flatten(1)
        q = torch.quantile(y, torch.tensor(PERCENTILES, device=y.device), dim=1).T
        return torch.cat([y.mean(1, keepdim=True), y.std(1, unbiased=False, keepdim=True), q], 1)

    def fourier(x: torch.Tensor) -> torch.Tensor:
        y = luminance(x)
        return torch.fft.fft2(y - y.mean(dim=(1, 2), keepdim=True))

    def spectrum(x: torch.Tensor) -> torch.Tensor:
        p = fourier(x).abs().square().flatten(1) / size ** 4
        idx = band.flatten().to(x.device)
        keep = (idx >= 0) & (idx < BANDS)
        sums = torch.zeros(len(x), BANDS, device=x.device).index_add_(1, idx[keep], p[:, keep])
        counts = torch.bincount(idx[keep], minlength=BANDS).clamp(min=1)
        return torch.log10(sums / counts + 1e-12)

    def gabor(x: torch.Tensor) -> torch.Tensor:
        spec = fourier(x)[:, None]
        responses = torch.fft.ifft2(spec * gabors.to(x.device))
        return torch.log10(responses.abs().square().mean(dim=(2, 3)) + 1e-12)

    def edge_stats(x: torch.Tensor) -> torch.Tensor:
        y = luminance(x)[:, None]
        kernels = torch.stack([sobel, sobel.T])[:, None].to(x.device)
        g = torch.nn.functional.conv2d(nn.functional.pad(y, (1, 1, 1, 1), mode="replicate"),
                                       kernels)
        magnitude = g.square().sum(1).sqrt().flatten(1)
        fractions = [(magnitude > step).float().mean(1) for step in EDGE_STEPS]
        return torch.stack([magnitude.mean(1), *fractions], dim=1)

    fns = {"colour_hist": colour_hist, "colour_moments": colour_moments,
           "luminance": luminance_stats, "spectrum": spectrum, "gabor": gabor,
           "edges": edge_stats}

    class Pixels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, fn in fns.items():
                self.add_module(name, Stat(fn))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([getattr(self, name)(x) for name in fns], dim=1)

    return Pixels()


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str,
          **options: Any) -> Any:
    """The statistics module; there are no weights (`random_init` is accepted and recorded, so
    `zoo compare pixels MODEL --random-init` works, but nothing is initialised)."""
    from zoo.errors import ZooError
    from zoo.model.base import ZooModel
    from zoo.plugin import load_options

    if weights:
        raise ZooError("pixels has no weights (fixed image statistics); drop --weights for it")
    cfg = load_options(spec, options).input(spec)
    return ZooModel(spec, _build(cfg.size), layers(), fingerprint=f"{VERSION}:{cfg.size}",
                    random_init=random_init, device=device, input=cfg,
                    weights_source="none: fixed low-level image statistics (no parameters)")


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec("pixels", "stats", _load, layers, input=INPUT, default=True,
                       weights="none (fixed image statistics)",
                       description="low-level image statistics, one layer each: "
                                   + "; ".join(f"{n} ({what})" for n, what, _ in STATISTICS)))
