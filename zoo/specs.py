"""Public path of the records plugins register (`zoo.specs.ModelSpec` etc.); they live in
`zoo.registry.specs`."""

from zoo.model.weights import CachedWeights
from zoo.registry.specs import DatasetSpec, InputConfig, LayerInfo, ModelSpec

__all__ = ["CachedWeights", "DatasetSpec", "InputConfig", "LayerInfo", "ModelSpec"]
