"""Synchronous ledger writes inside an open transaction: chained receipt INSERTs and the rollups (per UTC day
for `spend`, per quarter hour and day for the dashboard: ledger/rollups.py)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from nextmodel_proxy.ledger import rollups as rollups_module
from nextmodel_proxy.ledger.chain import GENESIS, link
from nextmodel_proxy.ledger.receipts import CONTENT_COLUMNS, Receipt, content_values

Row = tuple[Any, ...]
_WIDTH = len(CONTENT_COLUMNS) + 2
_ROW_SLOTS = f"({', '.join('?' * _WIDTH)})"
_INSERT_HEAD = f"INSERT INTO receipts ({', '.join(CONTENT_COLUMNS)}, prev_hash, hash) VALUES "
_ROWS_PER_INSERT = 128


def ledger_head(conn: sqlite3.Connection) -> str:
    """The hash the next receipt chains onto."""
    row = conn.execute("SELECT hash FROM receipts ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row and row[0] else GENESIS


def chain(contents: Sequence[Row], prev_hash: str) -> tuple[list[Row], str]:
    """INSERT parameter rows (content values + prev_hash + hash, in order) and the new head hash."""
    rows = []
    for values in contents:
        row_hash = link(prev_hash, values)
        rows.append((*values, prev_hash, row_hash))
        prev_hash = row_hash
    return rows, prev_hash


def chained_rows(receipts: Sequence[Receipt], prev_hash: str) -> tuple[list[Row], str]:
    return chain([content_values(r) for r in receipts], prev_hash)


def insert_rows(conn: sqlite3.Connection, rows: Sequence[Row], *, rollups: bool = True) -> None:
    """INSERT chained rows and fold them into the rollups (ledger/rollups.py), in the caller's transaction."""
    # Multi-row INSERTs rather than executemany: SQLite then does many rows per call with the GIL released,
    # instead of handing the GIL back and forth with the event loop thread once per row.
    per = min(_ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _WIDTH)
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        conn.execute(_insert_sql(len(part)), [value for row in part for value in row])
    if rollups:
        rollups_module.write(conn, rows)


@functools.lru_cache(maxsize=8)
def _insert_sql(n_rows: int) -> str:
    return _INSERT_HEAD + ", ".join([_ROW_SLOTS] * n_rows)
