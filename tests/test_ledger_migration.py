"""A ledger written by an older version (receipts, no rollups yet) opens and upgrades itself."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.chain import GENESIS
from nextmodel_proxy.ledger.receipts import CONTENT_COLUMNS, CORE_WIDTH
from nextmodel_proxy.ledger.rows import chained_rows
from nextmodel_proxy.ledger.spend import spend, spend_total
from nextmodel_proxy.ledger.writer import Ledger, verify
from tests.test_ledger import make_receipt

OLD_VERSION = [m for m in db.MIGRATIONS if m[0] < "m002"]


def _old_ledger(path: Path, n: int) -> None:
    conn = db.connect(path)
    assert db.migrate(conn, OLD_VERSION) == ["m000_meta", "m001_receipts"]
    rows, _head = chained_rows(
        [make_receipt(i, billed_cost_usd=Decimal(i) / 1000) for i in range(n)], GENESIS
    )
    # The old version had only the m001 columns and kept no rollups: write exactly those (their hashes were
    # computed over those columns; a later column joins the hash only when not NULL, so they still verify).
    assert all(row[CORE_WIDTH:-2] == (None,) * (len(row) - CORE_WIDTH - 2) for row in rows)
    old_rows = [(*row[:CORE_WIDTH], *row[-2:]) for row in rows]
    names = ", ".join((*CONTENT_COLUMNS[:CORE_WIDTH], "prev_hash", "hash"))
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO receipts ({names}) VALUES ({', '.join('?' * (CORE_WIDTH + 2))})", old_rows)
    conn.execute("COMMIT")
    conn.close()


async def test_an_older_ledger_upgrades_on_open_and_keeps_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_ledger(path, 30)
    ledger = Ledger(str(path))
    await ledger.start()
    await ledger.submit(make_receipt(99, billed_cost_usd=Decimal("0.5")))
    await ledger.close()

    conn = sqlite3.connect(path)
    applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    assert {"m001_receipts", "m002_spend_rollups"} <= applied
    result = verify(conn)
    assert result.ok and result.checked == 31  # the new receipt chains onto the old ones
    total = spend_total(spend(conn, "project"))
    assert total.count == 31
    assert total.billed_usd == sum(Decimal(i) / 1000 for i in range(30)) + Decimal(
        "0.5"
    )  # backfilled rollups


def test_migrations_apply_once(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "l.db")
    assert db.migrate(conn) == []
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"receipts", "spend_daily"} <= tables


def test_migrations_are_listed_once_in_order_and_m002_does_not_run_live_sql(tmp_path, monkeypatch):
    from nextmodel_proxy.ledger import rows

    names = [name for name, _ in db.MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
    # Editing the writer's live rollup must not change what the shipped m002 does.
    for module in (rows, db):  # wherever the live rollup lives
        monkeypatch.setattr(module, "ROLLUP_SELECT", "SELECT this is not sql", raising=False)
    conn = db.open_db(tmp_path / "fresh.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM spend_daily").fetchone()[0] == 0
    finally:
        conn.close()
