"""zoo: compare the internal representations of a zoo of vision models, layer by layer."""

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, InputConfig, LayerInfo, ModelSpec

__all__ = ["ZooError", "hookimpl", "ModelSpec", "LayerInfo", "InputConfig", "DatasetSpec"]
__version__ = "0.1.0"
