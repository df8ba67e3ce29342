"""Errors a user can cause: the CLI prints them as one line and exits 2, never a traceback."""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator

# Whether errors are worded for the command line (`--random-init`) or for Python
# (`random_init=True`): the CLI sets it for the duration of a command; Python is the default.
_CLI_WORDING: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_cli", default=False)

# CLI options whose Python argument is not just the option's name with `_` and `=`.
_PYTHON_ARGS = {
    "--skip-bad": "skip_bad=True", "--overwrite": "overwrite=True",
    "--random-init": "random_init=True", "--trust-weights": "trust_weights=True",
    "--freeze-encoder": "freeze_encoder=True", "--no-cache": "cache=False",
    "--reduce": "reduction=", "--weights-source": "source=", "--out": "the output folder",
    "--json": "the result's .to_dict()", "--all": "every family",
}
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?:[ =](?!(?:to|or|and|for|when|with|is|in|"
                     r"of|on|the|a|as|if|so|at|that|it|are|was|only|also)\b)([^\s,;()]+))?")


@contextlib.contextmanager
def cli_wording() -> Iterator[None]:
    """Word every error shown inside the block for the command line (`zoo.cli.app`)."""
    token = _CLI_WORDING.set(True)
    try:
        yield
    finally:
        _CLI_WORDING.reset(token)


def python_wording(message: str) -> str:
    """`message` with its CLI options written as the Python arguments that do the same:
    `--random-init` -> `random_init=True`, `--weights PATH` -> `weights=PATH`."""
    def swap(m: re.Match) -> str:
        option, value = m.group(1), m.group(2)
        arg = _PYTHON_ARGS.get(option, option[2:].replace("-", "_") + "=")
        if value and "=" in value:  # MODEL=PATH: a mapping in Python
            value = "{" + value.replace("=", ": ") + "}"
        if arg.endswith("="):
            return arg + (value or "...")
        return arg + (f" {value}" if value else "")

    parts = message.split("`")  # `zoo train ... --data PATH` is a shell command: kept as is
    return "`".join(p if k % 2 else _OPTION.sub(swap, p) for k, p in enumerate(parts))


class ZooError(Exception):
    """A problem with the user's input or environment, with the way out in its message: CLI
    options in it read as Python arguments unless shown under `cli_wording` (decided when the
    message is shown, so an error raised on a worker thread reads right wherever it lands)."""

    def __str__(self) -> str:
        text = super().__str__()
        return text if _CLI_WORDING.get() else python_wording(text)


class UnknownNameError(ZooError):
    """An unknown model, layer, metric, dataset or option value."""

    def __init__(self, kind: str, name: str, available: Iterable[str], hint: str = "") -> None:
        import difflib

        names = sorted(available)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        msg = f"unknown {kind} {name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)"
                                            if close else "")
        msg += f"; available: {shown or '(none)'}"
        super().__init__(msg + (f". {hint}" if hint else ""))
        self.kind, self.name, self.available = kind, name, names


class WeightsError(ZooError):
    """Weights are missing, unreadable, or do not fit the architecture."""


class DataError(ZooError):
    """A data source is missing, corrupt, or does not pair with another by sample id."""


_WAY_OUT = {  # errno name -> what the user can do about it
    "ENOSPC": "free space on that disk",
    "EDQUOT": "free space (disk quota exceeded)",
    "EACCES": "fix its permissions",
    "EPERM": "fix its permissions",
    "EROFS": "use a writable location",
    "ENOTDIR": "a part of that path is a file, not a folder",
    "EISDIR": "that path is a folder, not a file",
    "EEXIST": "remove it or choose another path",
}


def environment_error(exc: OSError, what: str = "", way_out: str = "") -> ZooError:
    """An OSError from the environment (permissions, full disk, a file where a folder should
    be) as a one-line ZooError: what failed, why, on which path, and the way out."""
    import errno

    reason = exc.strerror or str(exc) or type(exc).__name__
    path = exc.filename or ""
    name = errno.errorcode.get(exc.errno or 0, "")
    hint = "; ".join(h for h in (_WAY_OUT.get(name, ""), way_out) if h)
    head = f"{what}: " if what else ""
    where = f" ({path})" if path else ""
    return ZooError(f"{head}{reason}{where}" + (f"; {hint}" if hint else ""))


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, shortened: a foreign exception fit for one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    shown = lines[:2] if len(lines) > 1 and lines[0].endswith(":") else lines[:1]
    text = f"{type(exc).__name__}: {' '.join(shown)}"
    return text if len(text) <= limit else text[:limit - 3] + "..."
