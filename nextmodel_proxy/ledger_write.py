"""Synchronous ledger writes inside an open transaction: chained receipt INSERTs and the per-day rollups."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from nextmodel_proxy.chain import GENESIS, link
from nextmodel_proxy.receipts import CONTENT_COLUMNS, Receipt, content_values

_COL = {name: i for i, name in enumerate(CONTENT_COLUMNS)}
_INSERT = (
    f"INSERT INTO receipts ({', '.join(CONTENT_COLUMNS)}, prev_hash, hash) "
    f"VALUES ({', '.join('?' * (len(CONTENT_COLUMNS) + 2))})"
)
_ROLLUP_KEY = ("project", "team", "key_id", "model", "provider", "served_mode")
_ROLLUP_SUMS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens",
                "upstream_cost_pusd", "billed_cost_pusd", "fresh_cost_pusd", "savings_pusd")
_ROLLUP_COLUMNS = ("n", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
                   "reasoning_tokens", "upstream_pusd", "billed_pusd", "fresh_pusd", "savings_pusd", "unknown_cost")
_UPSERT = (
    f"INSERT INTO spend_daily (day, {', '.join(_ROLLUP_KEY)}, {', '.join(_ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (1 + len(_ROLLUP_KEY) + len(_ROLLUP_COLUMNS)))}) "
    f"ON CONFLICT (day, {', '.join(_ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _ROLLUP_COLUMNS)
)


def ledger_head(conn: sqlite3.Connection) -> str:
    """The hash the next receipt chains onto."""
    row = conn.execute("SELECT hash FROM receipts ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row and row[0] else GENESIS


def chained_rows(receipts: Sequence[Receipt], prev_hash: str) -> tuple[list[tuple[Any, ...]], str]:
    """INSERT parameter rows with prev_hash/hash filled in order, and the new head hash."""
    rows = []
    for receipt in receipts:
        values = content_values(receipt)
        row_hash = link(prev_hash, values)
        rows.append((*values, prev_hash, row_hash))
        prev_hash = row_hash
    return rows, prev_hash


def insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], *, rollups: bool = True) -> None:
    """INSERT chained rows (from chained_rows) and add them to spend_daily, in the caller's transaction."""
    conn.executemany(_INSERT, rows)
    if rollups:
        update_rollups(conn, rows)


def update_rollups(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Fold rows into one upsert per (day, attribution) key."""
    day_i = _COL["created_utc"]
    key_i = [_COL[c] for c in _ROLLUP_KEY]
    sum_i = [_COL[c] for c in _ROLLUP_SUMS]
    billed_i = _COL["billed_cost_pusd"]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        key = (row[day_i][:10], *(row[i] or "" for i in key_i))
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = [0] * len(_ROLLUP_COLUMNS)
        acc[0] += 1
        for j, i in enumerate(sum_i, start=1):
            acc[j] += row[i] or 0
        acc[-1] += row[billed_i] is None
    conn.executemany(_UPSERT, [(*key, *acc) for key, acc in groups.items()])
