"""Conformance of a model to zoo's contract: what `zoo check MODEL` runs, and what plugin authors
call in their tests (`assert_conforms`).

One fixed-seed batch goes through the model twice; each declared layer is checked against what
came out: layout (rank), batch size, channels, stride (maps: size / rows, rounded, as declared;
tokens: size / patch grid side), prefix tokens (the rest must form a square grid), finite values,
determinism, a single-layer request equal to the all-layers one, and equality with the library's
own intermediates API where the model offers one (`upstream_features`), within float32
tolerance.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.model.base import ZooModel
    from zoo.registry.specs import LayerInfo

# torch.testing's float32 defaults: a few ulps relative, 1e-5 absolute.
RTOL, ATOL = 1.3e-6, 1e-5


@dataclass
class LayerCheck:
    """The outcome for one layer: what was observed and the problems found ("" when none)."""

    layer: str
    layout: str
    shape: tuple[int, ...]
    channels: int
    stride: int | None
    prefix_tokens: int
    grid: str
    upstream: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Conformance:
    """All layers' checks of one model, with its extraction path and how long it took."""

    model: str
    extraction: str
    size: int
    layers: list[LayerCheck]
    model_problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.model_problems and all(c.ok for c in self.layers)

    def failures(self) -> list[str]:
        """One line per problem: `layer: problem`."""
        return self.model_problems + [f"{c.layer}: {p}" for c in self.layers for p in c.problems]

    def rows(self) -> list[dict[str, Any]]:
        """The table `zoo check` prints (a DataFrame: `pandas.DataFrame(report.rows())`)."""
        return [{"layer": c.layer, "layout": c.layout + (f"+{c.prefix_tokens}"
                                                         if c.prefix_tokens else ""),
                 "shape": "x".join(map(str, c.shape)), "channels": c.channels,
                 "stride": c.stride if c.stride is not None else "-", "grid": c.grid,
                 "upstream": c.upstream, "status": "ok" if c.ok else "; ".join(c.problems)}
                for c in self.layers]


def check_model(model: ZooModel | str, *, batch: int = 2, random_init: bool = True,
                weights: str | None = None, **options: Any) -> Conformance:
    """Load `model` (an id: random init unless `weights`) and check every declared layer on one
    fixed-seed batch of `batch` images at the model's input size."""
    import torch

    if isinstance(model, str):
        from zoo.model.loading import load_model

        model = load_model(model, weights=weights, random_init=random_init and not weights,
                           **options)
    start = time.perf_counter()
    size = model.input.size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    names = list(model.layers)
    first = model.forward_layers(x, names)
    second = model.forward_layers(x, names)
    alone = model.forward_layers(x, names[-1:])
    upstream_fn = getattr(model, "upstream_features", None)
    upstream = upstream_fn(x) if upstream_fn is not None else None
    problems = []
    if not torch.equal(alone[names[-1]], first[names[-1]]):
        problems.append(f"{names[-1]} requested alone differs from the all-layers request")
    checks = [_check_layer(model.layers[n], first[n], second[n], batch, size,
                           None if upstream is None else upstream.get(n)) for n in names]
    return Conformance(model.id, getattr(model, "extraction_path", "forward hooks"), size,
                       checks, problems, time.perf_counter() - start)


def _check_layer(info: LayerInfo, feat: Any, again: Any, batch: int, size: int,
                 reference: Any) -> LayerCheck:
    import torch

    rank = {"NCHW": 4, "NLC": 3, "NQC": 3, "NC": 2}[info.layout]
    shape = tuple(int(s) for s in feat.shape)
    problems = []
    stride, grid = None, "-"
    if feat.ndim != rank:
        problems.append(f"declared {info.layout} (rank {rank}) but got shape {shape}")
    elif shape[0] != batch:
        problems.append(f"batch axis {shape[0]}, expected {batch}")
    elif shape[-1] != info.channels:
        problems.append(f"declared {info.channels} channels, got {shape[-1]}")
    if feat.ndim == 4 and info.layout == "NCHW":
        stride, grid = round(size / shape[1]), f"{shape[1]}x{shape[2]}"
        if info.stride is not None and stride != info.stride:
            problems.append(f"declared stride {info.stride} but {size} px gives {shape[1]} rows")
    if feat.ndim == 3 and info.layout == "NLC":
        patches = shape[1] - info.prefix_tokens
        side = math.isqrt(max(patches, 0))
        if side * side != patches or side == 0:
            problems.append(f"{shape[1]} tokens minus {info.prefix_tokens} prefix tokens form "
                            "no square grid")
        else:
            stride, grid = round(size / side), f"{side}x{side}"
            if info.stride is not None and stride != info.stride:
                problems.append(f"declared stride {info.stride} but the grid is {side}x{side} "
                                f"at {size} px")
    if not bool(torch.isfinite(feat).all()):
        problems.append("non-finite values")
    if not torch.equal(feat, again):
        problems.append("not deterministic: two runs of the same batch differ")
    up = "-"
    if reference is not None:
        ref = reference.to(feat.dtype)
        if tuple(ref.shape) != shape:
            problems.append(f"library API gives shape {tuple(ref.shape)}, zoo {shape}")
            up = "shape differs"
        else:
            diff = float((feat.float() - ref.float()).abs().max()) if feat.numel() else 0.0
            close = torch.allclose(feat.float(), ref.float(), rtol=RTOL, atol=ATOL)
            up = f"equal (max |diff| {diff:.1e})" if close else f"DIFFERS by {diff:.2e}"
            if not close:
                problems.append(f"differs from the library API by up to {diff:.3g}")
    return LayerCheck(info.name, info.layout, shape, shape[-1] if shape else 0, stride,
                      info.prefix_tokens, grid, up, problems)


def assert_conforms(model: ZooModel | str, **kwargs: Any) -> Conformance:
    """`check_model`, raising AssertionError listing every problem (for plugin authors' tests)."""
    report = check_model(model, **kwargs)
    assert report.ok, f"{report.model} does not conform:\n" + "\n".join(report.failures())
    return report
