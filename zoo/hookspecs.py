"""Public path of the plugin hooks (`zoo.hookspecs.hookimpl` etc.); they live in
`zoo.registry.hookspecs`."""

from zoo.registry.hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
