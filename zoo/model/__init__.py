"""Loaded models: the `ZooModel` contract, upstream image transforms, local weights, and wrapping a
user's own `nn.Module`."""
