"""Outputs: figures (built without pyplot), HTML reports, the folders `zoo compare` and `zoo matrix`
write, and default run-folder names."""
