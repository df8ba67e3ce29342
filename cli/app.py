"""The `zoo` entry point: builds the Typer app from plugins and turns user errors into one line."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

import typer

from zoo.errors import ZooError, cli_wording, environment_error

INTERRUPTED = "interrupted; finished work is cached and a rerun resumes"

HELP = ("Compare the internal representations of a zoo of vision models, layer by layer.\n\n"
        "Start with `zoo list`, `zoo info MODEL` and `zoo compare A B`.")


# One module per built-in command group; each defines `register(app)`. The CLI registers them
# itself (the core never imports the CLI), then lets plugins add theirs.
GROUPS = ("listing", "extract", "cache", "compare", "matrix", "train", "demo", "cut", "align",
          "dissect", "check", "validate")


def build_app() -> typer.Typer:
    """The Typer app: the built-in command groups, then every plugin's commands."""
    import importlib

    from zoo.registry.host import get_registry

    app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, rich_markup_mode=None)
    app.callback()(_root)
    for group in GROUPS:
        importlib.import_module(f"zoo.cli.{group}").register(app)
    get_registry().add_commands(app)
    return app


def _show_version(value: bool) -> None:
    if value:
        from zoo import __version__

        print(f"zoo {__version__}")
        raise typer.Exit()


def _root(version: bool = typer.Option(False, "--version", is_eager=True,
                                       callback=_show_version,
                                       help="print the version and exit")) -> None:
    """Compare the internal representations of a zoo of vision models, layer by layer."""


def fail(message: str, code: int = 2) -> None:
    """Print one error line on stderr and exit with `code`."""
    print(f"zoo: error: {message}", file=sys.stderr)
    raise SystemExit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn what a user or the environment can cause into one `zoo: error:` line: exit 2
    (ZooError, permissions, full disk, a file where a folder should be, out of memory), or 130
    with the "interrupted" line on Ctrl-C. Worker processes wrap their body in it too. Errors
    raised inside are worded for the command line (`--random-init`, not `random_init=True`)."""
    with cli_wording():
        try:
            yield
        except ZooError as exc:
            fail(str(exc))
        except (typer.Abort, KeyboardInterrupt):
            fail(INTERRUPTED, 130)
        except OSError as exc:
            fail(str(environment_error(exc)))
        except MemoryError:
            fail("out of memory; pass a smaller --batch-size (or fewer layers or images)")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user and environment errors end as one line and exit 2, never a traceback;
    Ctrl-C ends with the "interrupted" line and exit 130. A thread a plugin left running never
    keeps zoo from exiting."""
    try:
        _run(argv)
    except SystemExit as exc:
        _leave(exc)


def _leave(exc: SystemExit) -> None:
    """Exit as `exc` says; if non-daemon threads (started by plugin code) are still running,
    name them and exit at once instead of waiting for them forever."""
    stray = [t.name for t in threading.enumerate()
             if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not stray:
        raise exc
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if exc.code is not None and not isinstance(exc.code, int):
        print(exc.code, file=sys.stderr)
    print(f"zoo: warning: not waiting for {len(stray)} thread(s) left running by plugin code: "
          f"{', '.join(stray)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(argv: list[str] | None) -> None:
    from zoo.cli.matrix import merge_help

    if merge_help(list(sys.argv[1:] if argv is None else argv)):
        raise SystemExit(0)
    with user_errors():
        try:
            command = typer.main.get_command(build_app())
            code = command.main(args=argv, prog_name="zoo", standalone_mode=False)
        except typer.TyperException as exc:  # click's usage errors, vendored by typer
            message = exc.format_message()
            if message.startswith("Usage:"):  # a group called without a command: show its help
                print(message, file=sys.stderr)
                raise SystemExit(2) from None
            ctx = getattr(exc, "ctx", None)
            fail(message + (f" (see `{ctx.command_path} --help`)" if ctx else ""), exc.exit_code)
        if code == 130:  # typer turns Ctrl-C inside a command into exit code 130, silently
            raise KeyboardInterrupt
    raise SystemExit(code if isinstance(code, int) else 0)
