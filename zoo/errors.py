"""Errors a user can cause: the CLI prints them as one line and exits 2, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable


class ZooError(Exception):
    """A problem with the user's input or environment, with the way out in its message."""


class UnknownNameError(ZooError):
    """An unknown model, layer, metric, dataset or option value."""

    def __init__(self, kind: str, name: str, available: Iterable[str], hint: str = "") -> None:
        names = sorted(available)
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        msg = f"unknown {kind} {name!r}; available: {shown or '(none)'}"
        super().__init__(msg + (f". {hint}" if hint else ""))
        self.kind, self.name, self.available = kind, name, names


class WeightsError(ZooError):
    """Weights are missing, unreadable, or do not fit the architecture."""


class DataError(ZooError):
    """A data source is missing, corrupt, or does not pair with another by sample id."""
