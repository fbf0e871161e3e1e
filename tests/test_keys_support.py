"""Shared helpers for the keys/budgets tests: a migrated ledger file and receipts with the brief's columns."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from pathlib import Path

from nextmodel_proxy.ledger import schema as db

_receipt_ids = itertools.count(1)


def ledger(path: Path) -> sqlite3.Connection:
    """A migrated ledger file (its receipts table is the ledger's own m001)."""
    conn = db.open_db(path)
    return conn


def add_receipt(
    conn: sqlite3.Connection,
    when: dt.datetime,
    billed_pusd: int | None,
    *,
    key_id: str | None = None,
    project: str | None = None,
    team: str | None = None,
) -> None:
    created = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute(
        "INSERT INTO receipts (receipt_id, created_utc, key_id, project, team, served_mode, billed_cost_pusd)"
        " VALUES (?, ?, ?, ?, ?, 'fresh', ?)",
        (f"rcpt_test{next(_receipt_ids):06d}", created, key_id, project, team, billed_pusd),
    )


def in_transaction(conn: sqlite3.Connection, fn):  # noqa: ANN001, ANN201 - test helper
    """Run fn(conn) the way the CLI and the ledger writer do: inside one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def test_receipts_fixture_sums_billed_cost_like_the_ledger(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    add_receipt(conn, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 5, project="p")
    add_receipt(conn, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), None, project="p")
    assert conn.execute("SELECT SUM(billed_cost_pusd), COUNT(*) FROM receipts").fetchone() == (5, 2)
