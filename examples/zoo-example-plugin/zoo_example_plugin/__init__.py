"""An example zoo plugin: one model family, `patchmlp`, in one module.

Install with `pip install -e examples/zoo-example-plugin`; then `zoo list` shows
`patchmlp/tiny` and `zoo compare patchmlp toy/cnn --data samples` works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zoo
from zoo.plugin import build_seeded, find_weights, load_into, load_options, wrap_model

SIZE, PATCH, DIM, DEPTH = 32, 4, 16, 2
INPUT = zoo.InputConfig(size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def layers() -> list[zoo.LayerInfo]:
    """Cheap layer metadata: `zoo info patchmlp` shows it without building the network."""
    out = [zoo.LayerInfo("embed", "embed", "stem", "NCHW", DIM, PATCH, 0.0)]
    out += [zoo.LayerInfo(f"mix{i}", f"mixers.{i}", "encoder", "NCHW", DIM, PATCH,
                          (i + 1) / DEPTH) for i in range(DEPTH)]
    return out


def load(spec: zoo.ModelSpec, weights: str | None, random_init: bool, device: str,
         **options: Any) -> Any:
    """Build the network (torch is imported here, not at plugin load) and wrap it with the
    plugin kit: the common options (--size, --trust-weights, ...), safe weight reading,
    provenance and the cache fingerprint come with it."""
    from torch import nn

    opts = load_options(spec, options)
    source = find_weights(spec, weights, random_init, opts,
                          accepts="a state dict of this network (.pth/.safetensors)")

    def build() -> nn.Module:
        net = nn.Module()
        net.embed = nn.Conv2d(3, DIM, PATCH, stride=PATCH)
        net.mixers = nn.Sequential(*[nn.Sequential(nn.Conv2d(DIM, DIM, 3, padding=1), nn.GELU())
                                     for _ in range(DEPTH)])
        net.forward = lambda x: net.mixers(net.embed(x))
        return net

    net = build_seeded(build)
    if not source.random_init:
        load_into(net, source.read(), str(source.path))
        source = source.detected("patchmlp state dict")
    return wrap_model(spec, net, layers(), source, opts.input(spec), device)


@zoo.hookimpl
def register_models(register: Callable[[zoo.ModelSpec], None]) -> None:
    register(zoo.ModelSpec("patchmlp", "tiny", load, layers, input=INPUT,
                           weights="--weights PATH or --random-init",
                           description="example plugin: patch embedding + 2 conv mixers"))
