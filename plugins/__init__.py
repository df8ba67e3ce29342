"""Built-in model plugins, one module per family (registered by the host like any plugin)."""
