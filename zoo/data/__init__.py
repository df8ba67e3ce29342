"""Image data: the fingerprinted `Dataset` record, the sources (folders, ISIC, bundled photographs,
synthetic sets) and the resolver from `--data` names to datasets."""
