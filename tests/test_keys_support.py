"""Shared helpers for the keys/budgets tests: a migrated ledger file and receipts with the brief's columns."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from pathlib import Path

from nextmodel_proxy.ledger import schema as db

# The receipts columns from the shared contract. IF NOT EXISTS: once the ledger's m001 is merged it wins.
RECEIPTS_DDL = """CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, receipt_id TEXT UNIQUE NOT NULL, created_utc TEXT NOT NULL,
    request_id TEXT, key_id TEXT, project TEXT, team TEXT, environment TEXT, tags TEXT, endpoint TEXT,
    model_requested TEXT, model TEXT, provider TEXT, upstream_model TEXT, route TEXT, served_mode TEXT,
    stream INTEGER, status INTEGER, error_code TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
    cached_tokens INTEGER, cache_write_tokens INTEGER, reasoning_tokens INTEGER, usage_source TEXT,
    upstream_cost_pusd INTEGER, billed_cost_pusd INTEGER, fresh_cost_pusd INTEGER, savings_pusd INTEGER,
    cost_unknown_reason TEXT, display_currency TEXT, display_rate TEXT, latency_ms REAL, ttft_ms REAL,
    reused_receipt_id TEXT, upstream_request_id TEXT, price_version TEXT, cache_key TEXT, cache_status TEXT,
    attempts TEXT, prev_hash TEXT, hash TEXT)"""

_receipt_ids = itertools.count(1)


def ledger(path: Path) -> sqlite3.Connection:
    """A migrated ledger file with a receipts table."""
    conn = db.open_db(path)
    conn.execute(RECEIPTS_DDL)
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
