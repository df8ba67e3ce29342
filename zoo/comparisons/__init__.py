"""Comparisons: two feature sets layer by layer (`Comparison`), and the zoo matrix run as a
resumable, sharded plan (`MatrixResult`)."""
