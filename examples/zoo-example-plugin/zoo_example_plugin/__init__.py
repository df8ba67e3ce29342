"""An example zoo plugin: one model family, `patchmlp`, in one module.

Install with `pip install -e examples/zoo-example-plugin`; then `zoo list` shows
`patchmlp/tiny` and `zoo compare patchmlp toy/cnn --data samples` works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zoo

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
    """Build the network (torch is imported here, not at plugin load) and wrap it."""
    import torch
    from torch import nn

    from zoo.model import ZooModel
    from zoo.weights import fingerprint_file, read_state_dict

    if not weights and not random_init:
        raise zoo.errors.WeightsError("patchmlp has no published weights; pass --weights PATH "
                                      "or --random-init")
    torch.manual_seed(0)
    net = nn.Module()
    net.embed = nn.Conv2d(3, DIM, PATCH, stride=PATCH)
    net.mixers = nn.Sequential(*[nn.Sequential(nn.Conv2d(DIM, DIM, 3, padding=1), nn.GELU())
                                 for _ in range(DEPTH)])
    net.forward = lambda x: net.mixers(net.embed(x))
    if weights:
        net.load_state_dict(read_state_dict(weights))
    return ZooModel(spec, net, layers(), random_init=not weights, device=device,
                    fingerprint=fingerprint_file(weights) if weights else "patchmlp-seed-0")


@zoo.hookimpl
def register_models(register: Callable[[zoo.ModelSpec], None]) -> None:
    register(zoo.ModelSpec("patchmlp", "tiny", load, layers, input=INPUT,
                           weights="--weights PATH or --random-init",
                           description="example plugin: patch embedding + 2 conv mixers"))
