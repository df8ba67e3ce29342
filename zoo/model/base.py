"""The model contract: a loaded model that yields channels-last features for named layers.

Families subclass `ZooModel` only where the default (forward hooks on module paths) does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.errors import UnknownNameError, ZooError, one_line
from zoo.model.weights import WeightSource
from zoo.registry.host import plugin_code
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec


class _StopForward(Exception):
    """Raised from a hook once every requested layer is captured (early stop)."""


class ZooModel:
    """A model ready for extraction: module in eval mode, its layers and input convention.

    `fingerprint` identifies the weights for cache keys ("" means: do not cache);
    `weights_source` says where they came from (path, cache, detected format) for reports.
    """

    def __init__(self, spec: ModelSpec, module: nn.Module, layers: Sequence[LayerInfo], *,
                 fingerprint: str, random_init: bool, device: str = "cpu",
                 input: InputConfig | None = None, weights_source: str = "",
                 source: WeightSource | None = None) -> None:
        self.spec = spec
        self.module = module.eval().to(device)
        self.layers = {info.name: info for info in layers}
        self.input = input or spec.input
        self.fingerprint = fingerprint
        self.random_init = random_init
        self.source = source
        self.weights_source = weights_source or (source.summary() if source else "")
        self.device = torch.device(device)
        self._transform: Any = None

    @property
    def id(self) -> str:
        return self.spec.id

    def layer(self, name: str) -> LayerInfo:
        """The `LayerInfo` called `name`, or a clear error listing the layers."""
        if name not in self.layers:
            raise UnknownNameError(f"layer of {self.id}", name, self.layers,
                                   f"See `zoo info {self.id}`")
        return self.layers[name]

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from and how images are prepared, for every output: id, weights
        path/cache entry and detected format, sha256, random-init flag, other candidate sources,
        and the resolved transform (InputConfig.key)."""
        source = self.source
        return {"id": self.id, "random_init": self.random_init,
                "weights_source": source.where if source else self.weights_source,
                "weights_format": source.format if source else "",
                "weights_sha256": source.sha256() if source else None,
                "fingerprint": self.fingerprint,
                "candidates": list(source.candidates) if source else [],
                "preprocessing": self.input.key(), "transform": self.input.describe()}

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> normalised (N, 3, S, S) batch by the checkpoint's upstream transform."""
        if self._transform is None:
            from zoo.model.transforms import build_transform

            self._transform = build_transform(self.input)
        return self._transform(images)

    def run(self, x: torch.Tensor) -> Any:
        """One forward pass of the wrapped module (families override for special calls)."""
        return self.module(x)

    def convert(self, info: LayerInfo, output: Any) -> torch.Tensor:
        """A hooked module's output -> channels-last tensor of the layer's layout."""
        if isinstance(output, (tuple, list)) and output:
            output = output[0]
        if not isinstance(output, torch.Tensor):
            raise ZooError(f"{self.id} layer {info.name}: module {info.module!r} returns a "
                           f"{type(output).__name__}, not a tensor; declare a module whose "
                           "output is a tensor (or override ZooModel.convert)")
        if info.layout == "NCHW":
            return output.permute(0, 2, 3, 1)
        return output

    @torch.inference_mode()
    def forward_layers(self, x: torch.Tensor, layers: Sequence[str],
                       stop_early: bool = True) -> dict[str, torch.Tensor]:
        """Channels-last features of `layers` for batch `x`, via forward hooks.

        A module that fires several times per forward must be declared one call at a time
        (`LayerInfo.call`, named `name@k`); a second call of a layer declared without one is an
        error, never a silent concat (a full forward, `stop_early=False`, always checks this).
        """
        infos = [self.layer(n) for n in layers]
        by_module: dict[str, list[LayerInfo]] = {}
        for info in infos:
            by_module.setdefault(info.module, []).append(info)
        captured: dict[str, torch.Tensor] = {}
        handles = []

        def make_hook(module_name: str):
            calls = {"n": 0}

            def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
                k = calls["n"]
                calls["n"] += 1
                for info in by_module[module_name]:
                    if info.call is None and k > 0:
                        raise ZooError(f"module {module_name} fires more than once per forward; "
                                       f"layer {info.name} must name one call (name@k)")
                    if info.call in (None, k):
                        captured[info.name] = self.convert(info, out).detach()
                if stop_early and len(captured) == len(infos):
                    raise _StopForward

            return hook

        modules = dict(self.module.named_modules())
        for module_name in by_module:
            if module_name not in modules:
                raise ZooError(f"{self.id}: module {module_name!r} not found in the network")
            handles.append(modules[module_name].register_forward_hook(make_hook(module_name)))
        try:
            with plugin_code():
                self.run(x.to(self.device, non_blocking=True))
        except _StopForward:
            pass
        except torch.OutOfMemoryError:
            raise MemoryError from None  # the CLI says: a smaller --batch-size
        except (ZooError, MemoryError):
            raise
        except Exception as exc:
            raise ZooError(f"{self.id}: the forward pass failed: {one_line(exc)}") from exc
        finally:
            for h in handles:
                h.remove()
        missing = [i.name for i in infos if i.name not in captured]
        if missing:
            raise ZooError(f"{self.id}: layers {missing} did not fire during the forward pass")
        return {name: captured[name] for name in layers}


def preprocess_image(image: Any, cfg: InputConfig) -> np.ndarray:
    """One PIL image -> normalised float32 (3, S, S) array following `cfg`
    (zoo.model.transforms)."""
    from zoo.model.transforms import build_transform

    return build_transform(cfg)([image])[0].numpy()


def provenance_text(p: dict[str, Any]) -> str:
    """A `ZooModel.provenance()` dict as the lines printed above a command's table."""
    weights = p["weights_source"] + (f" [{p['weights_format']}]" if p["weights_format"] else "")
    digest = p["weights_sha256"] or f"- (random init, fingerprint {p['fingerprint']})"
    lines = [f"model: {p['id']}", f"weights: {weights}", f"sha256: {digest}",
             f"input: {p['transform']}"]
    return "\n".join(lines + [f"also found: {c}" for c in p["candidates"]])
