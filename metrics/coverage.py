"""Planted populations with a closed-form population linear CKA, and the coverage study that
holds `zoo.metrics.stats.confidence_intervals` to its nominal level on each of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zoo.metrics.stats import confidence_interval

POPULATIONS = ("isotropic", "anisotropic", "low-rank", "student-t3")
LATENT = 4


@dataclass(frozen=True)
class Population:
    """X = Z A + E_x, Y = Z B + E_y with independent latent Z (LATENT columns) and noises E; the
    population CKA ||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F) needs only the covariances."""

    name: str
    cka: float
    draw: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def population(name: str, width: int, seed: int = 0) -> Population:
    """`isotropic`: unit latents, noise sd 1 per feature; `anisotropic`: latent sds 3, 1, 0.3,
    0.1 and noise sds from 6 down to 0.2 (geometric); `low-rank`: two latents and noise sd 0.3;
    `student-t3`: as isotropic with Student-t(3) latents and noise (scaled to unit variance)."""
    if name not in POPULATIONS:
        raise ValueError(f"unknown population {name!r}; known: {', '.join(POPULATIONS)}")
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(LATENT, width)), rng.normal(size=(LATENT, width))
    latent_sd, noise_sd = np.ones(LATENT), np.ones(width)
    if name == "anisotropic":
        latent_sd, noise_sd = np.array([3.0, 1.0, 0.3, 0.1]), 2.0 * np.geomspace(3, 0.1, width)
    if name == "low-rank":
        A[2:] = B[2:] = 0.0
        noise_sd = np.full(width, 0.3)
    cov_z = np.diag(latent_sd**2)
    noise = np.diag(noise_sd**2)
    s_xy = A.T @ cov_z @ B
    value = np.sum(s_xy**2) / (np.linalg.norm(A.T @ cov_z @ A + noise)
                               * np.linalg.norm(B.T @ cov_z @ B + noise))

    def unit(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        if name == "student-t3":
            return rng.standard_t(3, size=shape) / np.sqrt(3.0)
        return rng.normal(size=shape)

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        Z = unit(rng, (n, LATENT)) * latent_sd
        return (Z @ A + unit(rng, (n, width)) * noise_sd,
                Z @ B + unit(rng, (n, width)) * noise_sd)

    return Population(name, float(value), draw)


def coverage(metric: str, name: str, n: int, width: int, draws: int,
             seed: int = 0) -> tuple[float, float]:
    """(share of the given 95% intervals that contain the population CKA, share of draws that
    got one) over `draws` independent samples of n rows."""
    pop = population(name, width, seed)
    rng = np.random.default_rng([seed, n])
    hits = given = 0
    for k in range(draws):
        low, high = confidence_interval(metric, *pop.draw(n, rng), seed=k)
        given += not np.isnan(low)
        hits += bool(low <= pop.cka <= high)
    return hits / max(given, 1), given / draws
