"""How every command prints: aligned tables that fit the terminal, and JSON for --json.

Tables are cut to the terminal's width only when writing to a terminal; piped output is never cut, so
`nmproxy ... | grep` sees every character.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Container, Sequence
from typing import Any

import click
import orjson

_GAP = "  "
_MIN_WIDTH = 8


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    right: Container[int] = (),
    width: int | None = None,
) -> str:
    """Columns aligned (those in `right`, e.g. amounts, to the right), None shown as '-'. When the table is
    wider than `width` (default: the terminal's, if any), the widest left-aligned columns are cut with '…'."""
    cells = [[str(h) for h in header]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    limit = width if width is not None else terminal_width()
    if limit is not None:
        widths = _fit(widths, limit, right)
    return "\n".join(_line(line, widths, right) for line in cells)


def _line(cells: list[str], widths: list[int], right: Container[int]) -> str:
    out = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        if len(cell) > w:
            cell = cell[: w - 1] + "…"
        out.append(cell.rjust(w) if i in right else cell.ljust(w))
    return _GAP.join(out).rstrip()


def _fit(widths: list[int], limit: int, right: Container[int]) -> list[int]:
    """Narrow the widest left-aligned column, one character at a time, until the table fits (bounded)."""
    widths = list(widths)
    shrinkable = [i for i in range(len(widths)) if i not in right]
    while sum(widths) + len(_GAP) * (len(widths) - 1) > limit:
        candidates = [i for i in shrinkable if widths[i] > _MIN_WIDTH]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def terminal_width() -> int | None:
    """The terminal's width (COLUMNS wins) when output goes to one; None when piped or captured."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def echo_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Container[int] = ()) -> None:
    click.echo(table(header, rows, right=right))


def echo_json(value: Any) -> None:
    """One JSON document, indented, with a final newline (orjson: Decimals must already be strings)."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
