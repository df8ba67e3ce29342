"""The all-pairs engine (prepare each representation once, score every pair in blocks) and the one
tidy row format its results take."""
