"""The progress callback every long-running library call accepts (the CLI draws it).

`progress(task, done, total)` is called as work advances; library code never prints.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def tagged(progress: Progress | None, prefix: str) -> Progress | None:
    """`progress` with `prefix: ` in front of every task name (None stays None)."""
    if progress is None:
        return None
    return lambda task, done, total: progress(f"{prefix}: {task}", done, total)
