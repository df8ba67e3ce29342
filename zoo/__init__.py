"""zoo: compare the internal representations of a zoo of vision models, layer by layer.

The notebook API (`zoo.load`, `zoo.extract`, `zoo.compare`, ...) lives in `zoo.api` and is
re-exported here lazily, so `import zoo` stays cheap (no torch) and the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError
from zoo.registry.hookspecs import hookimpl
from zoo.registry.specs import DatasetSpec, InputConfig, LayerInfo, ModelSpec

API = ("list_models", "load", "wrap", "dataset", "extract", "compare", "compare_models",
       "matrix", "open", "validate")
SUBPACKAGES = ("metrics", "align", "concepts")
__all__ = ["ZooError", "hookimpl", "ModelSpec", "LayerInfo", "InputConfig", "DatasetSpec",
           *API]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """`zoo.load` etc. resolve to `zoo.api`, `zoo.metrics` etc. import, on first use."""
    if name in API:
        from zoo import api

        return getattr(api, name)
    if name in SUBPACKAGES:
        import importlib

        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
