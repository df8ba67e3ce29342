"""Features: per-layer arrays and their reductions, extraction over a dataset, the content-keyed
cache on disk, and the labelled `FeatureSet` that comparisons consume."""
