"""Similarity metrics between representations (rows = samples, columns = features)."""
