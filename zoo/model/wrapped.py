"""Bring your own `nn.Module`: wrap it as a `ZooModel` without writing a plugin.

Layer layouts and widths are read from one probe forward pass (4-D outputs are NCHW maps, 3-D
token sequences NLC, 2-D vectors NC), depth follows the order the layers fire in, and the
weights' fingerprint is a hash of the state dict and of the forward (module tree and code), so
the feature cache works as for plugins and never serves one forward's features to another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownNameError, ZooError

if TYPE_CHECKING:
    from torch import nn

    from zoo.model.base import ZooModel
    from zoo.registry.specs import InputConfig

LAYOUT_BY_NDIM = {4: "NCHW", 3: "NLC", 2: "NC"}


def state_fingerprint(module: nn.Module) -> str:
    """sha256 over the module's parameter and buffer names, shapes, dtypes and bytes."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def forward_fingerprint(module: nn.Module) -> str:
    """sha256 of what computes the forward besides the weights: the module tree as printed
    (every submodule's type and hyper-parameters: strides, eps, activations) and the code of
    every method of each user-defined class in it (torch's own classes are named by the torch
    version), plus forwards assigned to an instance. Two modules with the same weights but
    another forward never share cached features."""
    import torch

    digest = hashlib.sha256(f"torch {torch.__version__}\n{module!r}".encode())
    seen: set[type] = set()
    for name, sub in module.named_modules():
        for cls in type(sub).__mro__:
            if cls in seen or cls.__module__.split(".")[0] in ("torch", "builtins"):
                continue
            seen.add(cls)
            digest.update(f"class {cls.__module__}.{cls.__qualname__}".encode())
            for attr, value in sorted(vars(cls).items()):
                _code_digest(digest, attr, value)
        for attr, value in sorted(vars(sub).items()):  # e.g. `net.forward = other`
            if callable(value) and not isinstance(value, torch.nn.Module):
                _code_digest(digest, f"{name}.{attr}", value)
    return digest.hexdigest()


def _code_digest(digest: Any, name: str, value: Any) -> None:
    """Feed a function's (or method's, property's) code into `digest`: bytecode, names and
    constants, nested functions included; file names and line numbers left out."""
    for fn in (value.fget, value.fset) if isinstance(value, property) else (value,):
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
        if code is not None:
            digest.update(name.encode())
            _feed_code(digest, code)


def _feed_code(digest: Any, code: Any) -> None:
    digest.update(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames)).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _feed_code(digest, const)
        else:
            digest.update(repr(const).encode())


def wrap_module(module: nn.Module, layers: Mapping[str, str] | Sequence[str], *,
                name: str = "custom/module", input: InputConfig | None = None,
                roles: Mapping[str, str] | None = None, device: str = "cpu",
                prefix_tokens: int | Mapping[str, int] | None = None) -> ZooModel:
    """A `ZooModel` for `module` whose layers are `{layer name: module path}` (a list of paths
    names each layer after its path); see the module docstring for what is inferred.
    `prefix_tokens`: class/register tokens before the patches of token (NLC) layers, one count
    for all or `{layer: count}`; each token layer's patches must form a square grid."""
    from zoo.model.base import ZooModel
    from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

    paths = dict(layers) if isinstance(layers, Mapping) else {p: p for p in layers}
    if not paths:
        raise ZooError("wrap: name at least one layer (a module path of the network)")
    modules = dict(module.named_modules())
    for layer, path in paths.items():
        if path not in modules:
            raise UnknownNameError(f"module path (layer {layer!r})", path,
                                   [m for m in modules if m],
                                   "List them with `dict(module.named_modules())`")
    cfg = input or InputConfig()
    family, _, arch = name.partition("/")
    shapes, order = _probe(module.eval().to(device), paths, cfg.size, device)
    infos = []
    for k, layer in enumerate(sorted(paths, key=order.index)):
        shape = shapes[layer]
        if len(shape) not in LAYOUT_BY_NDIM:
            raise ZooError(f"wrap: layer {layer!r} outputs shape {tuple(shape)}; only (N, C, H, "
                           "W) maps, (N, L, C) tokens and (N, C) vectors are supported")
        layout = LAYOUT_BY_NDIM[len(shape)]
        prefix, stride = (token_grid(layer, shape, prefix_tokens, cfg.size)
                          if layout == "NLC" else (0, None))
        infos.append(LayerInfo(layer, paths[layer], (roles or {}).get(layer, "encoder"),
                               layout, int(shape[1] if len(shape) == 4 else shape[-1]),
                               stride=stride, depth=k / max(1, len(paths) - 1),
                               prefix_tokens=prefix))
    spec = ModelSpec(family or "custom", arch or "module", lambda *a, **k: None,
                     lambda: list(infos), input=cfg, weights="user module",
                     description=f"wrapped {type(module).__name__}")
    fingerprint = f"{state_fingerprint(module)}+forward:{forward_fingerprint(module)[:16]}"
    return ZooModel(spec, module, infos, fingerprint=fingerprint, random_init=False,
                    device=device, input=cfg, weights_source="in-memory nn.Module")


def token_grid(layer: str, shape: Sequence[int], prefix_tokens: int | Mapping[str, int] | None,
               size: int) -> tuple[int, int | None]:
    """A token layer's declared prefix count and its patch stride (size / grid side); tokens that
    form no square grid after the prefix are an error naming the layer and the way out."""
    import math

    declared = (prefix_tokens.get(layer, 0) if isinstance(prefix_tokens, Mapping)
                else prefix_tokens or 0)
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 0:
        raise ZooError(f"wrap: prefix_tokens for layer {layer!r} must be a whole number >= 0, "
                       f"got {declared!r}")
    tokens = int(shape[1])
    side = math.isqrt(max(tokens - declared, 0))
    if side == 0 or side * side != tokens - declared:
        fits = [p for p in range(min(tokens, 9)) if math.isqrt(tokens - p) ** 2 == tokens - p]
        way = (f"prefix_tokens={{{layer!r}: {fits[0]}}} leaves {tokens - fits[0]} = "
               f"{math.isqrt(tokens - fits[0])}x{math.isqrt(tokens - fits[0])} patches"
               if fits else f"prefix_tokens={{{layer!r}: N}}")
        raise ZooError(f"wrap: layer {layer!r} has {tokens} tokens, which minus {declared} "
                       f"declared prefix tokens form no square patch grid; declare its class/"
                       f"register tokens, e.g. {way}")
    return declared, max(1, round(size / side))


def _probe(module: nn.Module, paths: Mapping[str, str], size: int,
           device: str) -> tuple[dict[str, Any], list[str]]:
    """Each layer's output shape on a (2, 3, size, size) zero batch, and the order they fire."""
    import torch

    shapes: dict[str, Any] = {}
    order: list[str] = []
    modules = dict(module.named_modules())
    handles = []
    for layer, path in paths.items():
        def hook(_m: Any, _i: Any, out: Any, layer: str = layer, path: str = path) -> None:
            out = out[0] if isinstance(out, (tuple, list)) and out else out
            if not isinstance(out, torch.Tensor):
                raise ZooError(f"wrap: layer {layer!r} (module {path!r}) returns a "
                               f"{type(out).__name__}, not a tensor; name a submodule whose "
                               "output is a tensor")
            if layer not in shapes:
                shapes[layer] = tuple(out.shape)
                order.append(layer)
        handles.append(modules[path].register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(torch.zeros(2, 3, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
    silent = [layer for layer in paths if layer not in shapes]
    if silent:
        raise ZooError(f"wrap: layers {silent} did not fire in a forward pass; check the paths")
    return shapes, order
