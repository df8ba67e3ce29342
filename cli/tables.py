"""Tables that never split an identifier: rich's table when it fits the width (cells wrap only
at spaces, every column at least as wide as its longest word), else a compact layout: the
leading columns that fit, aligned, and each remaining column on its own indented line."""

from __future__ import annotations

import math
import os
import shutil
import sys
from typing import Any

WIDE = 200  # off a terminal without COLUMNS (a file, a pipe): wide, so nothing wraps


def table_width() -> int:
    """COLUMNS when set (on a terminal or not), else the terminal's width, else WIDE."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return WIDE


def _words(text: str) -> int:
    """The longest word of `text` (what must never be split), in terminal cells."""
    from rich.cells import cell_len

    return max((cell_len(w) for w in text.split()), default=0)


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.splitlines()), default=0)


def column_widths(columns: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Widths for a boxed table within `width` where no word is split (each column at least
    its longest word, spare room shared by how much more each would take), or None."""
    table = [columns, *rows]
    natural = [max(_cells(r[c]) for r in table) for c in range(len(columns))]
    least = [max(_words(r[c]) for r in table) for c in range(len(columns))]
    room = width - (3 * len(columns) + 1)  # borders and one space of padding either side
    if sum(least) > room:
        return None
    if sum(natural) <= room:
        return natural
    spare, want = room - sum(least), [n - m for n, m in zip(natural, least)]
    widths = [m + spare * w // max(1, sum(want)) for m, w in zip(least, want)]
    return widths


def compact(columns: list[str], rows: list[list[str]], width: int) -> str:
    """The leading columns that fit on one line, aligned under a header; every other column
    as an indented `name: value` line under its row (values whole, never split)."""
    natural = [max(_cells(r[c]) for r in [columns, *rows]) for c in range(len(columns))]
    lead, used = 0, 0
    while lead < len(columns) and used + natural[lead] + (2 if lead else 0) <= width:
        used += natural[lead] + (2 if lead else 0)
        lead += 1
    lead = max(lead, 1)

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(natural[k]) for k, c in enumerate(cells)).rstrip()

    out = [line(columns[:lead]), "-" * min(width, max(used, natural[0]))]
    for row in rows:
        out.append(line(row[:lead]))
        out += [wrap(f"{columns[k]}: {row[k]}", width, "    ")
                for k in range(lead, len(columns))]
    return "\n".join(out)


def wrap(text: str, width: int | None = None, indent: str = "") -> str:
    """`text` wrapped at spaces to `width` (default `table_width()`), never inside a word;
    continuation lines indented four more spaces than `indent`."""
    import textwrap

    return textwrap.fill(text, width or table_width(), initial_indent=indent,
                         subsequent_indent=indent + "    ", break_long_words=False,
                         break_on_hyphens=False)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A table on stdout under its title (wrapped at spaces, never into the table), as wide
    as `table_width()`; nothing in it is read as markup and no identifier is ever split."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if title:
        print(wrap(title))
    cells = [[_fmt(v) for v in row] for row in rows]
    width = table_width()
    widths = column_widths(columns, cells, width)
    if widths is None:
        print(compact(columns, cells, width))
        return
    table = Table(show_lines=False)
    for column, w in zip(columns, widths):
        table.add_column(escape(column), overflow="fold", min_width=w, max_width=w)
    for row in cells:
        table.add_row(*[escape(c) for c in row])
    Console(width=width).print(table)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)
