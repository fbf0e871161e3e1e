"""Open and migrate the SQLite file. Migrations are named, append-only, one transaction each."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

Migration = tuple[str, Callable[[sqlite3.Connection], None]]


def _sql(script: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in script.split(";\n"):
            if statement.strip():
                conn.execute(statement)

    return run


# Append only: never edit or reorder an entry that has shipped. Names sort in application order.
# Ranges: m001-m009 receipts/ledger, m010-m019 cache, m020-m029 keys/budgets.
MIGRATIONS: list[Migration] = [
    (
        "m000_meta",
        _sql("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
    ),
]


def connect(path: str | Path, *, readonly: bool = False, timeout_s: float = 5.0) -> sqlite3.Connection:
    """A connection with the project's pragmas; `readonly` opens with mode=ro (never creates the file)."""
    if readonly:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=timeout_s,
                               check_same_thread=False, isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction; returns the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    applied = []
    for name, step in sorted(migrations if migrations is not None else MIGRATIONS, key=lambda m: m[0]):
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_utc) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                (name,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database file."""
    conn = connect(path)
    migrate(conn)
    return conn
