"""Synchronous ledger writes inside an open transaction: chained receipt INSERTs and the rollups (per UTC day
for `spend`, per quarter hour for the dashboard)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from nextmodel_proxy.ledger.chain import GENESIS, link
from nextmodel_proxy.ledger.dash_rollups import UPSERTS as DASHBOARD_UPSERTS
from nextmodel_proxy.ledger.receipts import CONTENT_COLUMNS, Receipt, content_values

Row = tuple[Any, ...]
_WIDTH = len(CONTENT_COLUMNS) + 2
_ROW_SLOTS = f"({', '.join('?' * _WIDTH)})"
_INSERT_HEAD = f"INSERT INTO receipts ({', '.join(CONTENT_COLUMNS)}, prev_hash, hash) VALUES "
_ROWS_PER_INSERT = 128
_ROLLUP_COLUMNS = (
    "n",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "upstream_pusd",
    "billed_pusd",
    "fresh_pusd",
    "savings_pusd",
    "unknown_cost",
)
# The rollup of receipts with seq > ?: the writer runs it after each INSERT (m002 keeps its own frozen copy).
ROLLUP_SELECT = """
SELECT substr(created_utc, 1, 10), COALESCE(project, ''), COALESCE(team, ''), COALESCE(key_id, ''),
       COALESCE(model, ''), COALESCE(provider, ''), COALESCE(served_mode, ''), COUNT(*),
       COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0),
       COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(reasoning_tokens), 0),
       COALESCE(SUM(upstream_cost_pusd), 0), COALESCE(SUM(billed_cost_pusd), 0),
       COALESCE(SUM(fresh_cost_pusd), 0), COALESCE(SUM(savings_pusd), 0),
       SUM(billed_cost_pusd IS NULL)
FROM receipts WHERE seq > ? GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

# ROLLUP_SELECT ends in WHERE ... GROUP BY, so SQLite cannot read ON CONFLICT as a join's ON clause.
_ROLLUP_UPSERT = (
    "INSERT INTO spend_daily "
    + ROLLUP_SELECT
    + " ON CONFLICT (day, project, team, key_id, model, provider, served_mode) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _ROLLUP_COLUMNS)
)


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
    """INSERT chained rows and fold them into spend_daily (in SQL, one upsert per key), in the caller's
    transaction."""
    before = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM receipts").fetchone()[0]
    # Multi-row INSERTs rather than executemany: SQLite then does many rows per call with the GIL released,
    # instead of handing the GIL back and forth with the event loop thread once per row.
    per = min(_ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _WIDTH)
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        conn.execute(_insert_sql(len(part)), [value for row in part for value in row])
    if rollups:
        conn.execute(_ROLLUP_UPSERT, (before,))
        for statement in DASHBOARD_UPSERTS:
            conn.execute(statement, (before,))


@functools.lru_cache(maxsize=8)
def _insert_sql(n_rows: int) -> str:
    return _INSERT_HEAD + ", ".join([_ROW_SLOTS] * n_rows)
