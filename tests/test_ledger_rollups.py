"""The writer's rollups (folded in Python per batch, ledger/rollups.py) equal what the frozen SQL folds compute.

The reference is the SQL that filled these tables before the Python fold: m002's and m050's backfills, frozen in
ledger/schema.py, run over the same receipts. Receipts go through the real writer, one at a time and in
concurrent batches, so single-receipt and multi-receipt transactions (and several batches adding to one row)
are all covered.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.chain import verify
from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.ledger.rollups import LATENCY_EDGES_MS
from nextmodel_proxy.ledger.writer import Ledger

ROLLUP_TABLES = ("spend_daily", "spend_q15", "spend_d", "series_q15", "latency_q15", "latency_key_q15")
# Instants on both sides of every quarter-hour edge, and of a UTC midnight, over three days.
INSTANTS = (
    "2026-12-04T23:44:59.999999Z",
    "2026-12-04T23:45:00.000000Z",
    "2026-12-04T23:59:59.999999Z",
    "2026-12-05T00:00:00.000000Z",
    "2026-12-05T00:14:59.000000Z",
    "2026-12-05T00:15:00.000000Z",
    "2026-12-05T00:29:30.500000Z",
    "2026-12-05T00:30:00.000000Z",
    "2026-12-05T00:44:00.000000Z",
    "2026-12-05T13:07:00.000000Z",
    "2026-12-06T09:52:10.123456Z",
)
# Exactly on bin edges, just above them, below the first, past the last, and not numbers at all.
LATENCIES: tuple[float | None, ...] = (
    *(float(e) for e in LATENCY_EDGES_MS),
    *(e + 0.001 for e in LATENCY_EDGES_MS[::4]),
    0.0,
    0.5,
    120000.0,
    120000.5,
    1e9,
    None,
    None,
    float("nan"),
)


def varied_receipts() -> list[Receipt]:
    out = []
    mode_usage = itertools.cycle(
        [
            ("fresh", "upstream"),
            ("exact-cache", "cache"),
            ("error", "none"),
            ("fresh", "estimated"),
            ("error", "estimated"),
        ]
    )
    attribution = itertools.cycle(
        [
            {"project": "alpha", "team": "red", "key_id": "key_a", "model": "gpt-x", "provider": "openai"},
            {
                "project": "beta",
                "team": None,
                "key_id": "key_b",
                "model": "claude-y",
                "provider": "anthropic",
            },
            {"project": None, "team": None, "key_id": None, "model": None, "provider": None},
            {"project": "", "team": "blue", "key_id": "key_a", "model": "gpt-x", "provider": "openai"},
        ]
    )
    ttfts = itertools.cycle([5.0, None, 30.0, 0.2, 120000.0, 999999.0])
    for i, latency in enumerate(LATENCIES * 3):
        mode, usage = next(mode_usage)
        unknown = i % 7 == 3  # the cost is unknown: all four amounts NULL
        cost = Decimal(i * 1_234_567 + 1) / Decimal(10**12)  # exact picodollars, distinct per receipt
        billed = cost / 4 if mode == "exact-cache" else cost
        money: dict[str, Any] = (
            {"cost_unknown_reason": "no price"}
            if unknown
            else {
                "upstream_cost_usd": Decimal(0) if mode == "exact-cache" else cost,
                "billed_cost_usd": billed,
                "fresh_cost_usd": cost,
                "savings_usd": cost - billed,
            }
        )
        tokens = {} if i % 5 == 4 else {"prompt_tokens": 100 + i, "completion_tokens": 7 * i}
        if i % 3 == 0:
            tokens |= {"cached_tokens": i, "cache_write_tokens": 2 * i, "reasoning_tokens": 3 * i}
        out.append(
            Receipt(
                receipt_id=f"rcpt_{i:026x}",
                created_utc=INSTANTS[i % len(INSTANTS)],
                **next(attribution),
                served_mode=mode,
                usage_source=usage,
                status=500 if mode == "error" else 200,
                stream=i % 2 == 0,
                latency_ms=latency,
                ttft_ms=next(ttfts),  # also set on non-streams, which the ttft histogram must skip
                **tokens,
                **money,
            )
        )
    return out


def table_rows(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in ROLLUP_TABLES}


def frozen_sql_rollups(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The rollups as m002's and m050's frozen SQL backfills compute them over every receipt in the file."""
    conn = db.connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table in ROLLUP_TABLES:
            conn.execute(f"DELETE FROM {table}")
        conn.execute(db._M002_BACKFILL)
        for statement in db._M050_BACKFILL:
            conn.execute(statement)
        reference = table_rows(conn)
        conn.execute("ROLLBACK")
        return reference
    finally:
        conn.close()


async def test_writer_rollups_equal_the_frozen_sql_folds(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    receipts = varied_receipts()
    ledger = Ledger(str(path))
    await ledger.start()
    try:
        half = len(receipts) // 2
        for receipt in receipts[:half]:  # one receipt per transaction
            await ledger.submit(receipt)
        commits = ledger.commits
        await asyncio.gather(*(ledger.submit(r) for r in receipts[half:]))  # a few multi-receipt batches
        assert ledger.commits - commits < len(receipts) - half
    finally:
        await ledger.close()
    conn = db.connect(path, readonly=True)
    try:
        assert verify(conn).ok
        written = table_rows(conn)
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == len(receipts)
    finally:
        conn.close()
    reference = frozen_sql_rollups(path)
    # every kind of row is there to compare: unknown costs, errors, estimates, both histograms, NULL keys
    assert any(r[-1] > 0 for r in reference["spend_d"]) and any(r[8] > 0 for r in reference["spend_d"])
    assert any(r[9] > 0 for r in reference["spend_d"])
    assert {r[1] for r in reference["latency_q15"]} == {"latency", "ttft"}
    assert {r[2] for r in reference["latency_q15"]} >= set(range(len(LATENCY_EDGES_MS) + 1))
    assert "" in {r[0] for r in reference["latency_key_q15"]}
    assert len({r[0] for r in reference["spend_q15"]}) == 7 and len({r[0] for r in reference["spend_d"]}) == 3
    for table in ROLLUP_TABLES:
        assert written[table] == reference[table], table
