"""The ledger writer on real SQLite files: group commit, round trips, hash chain, failure and recovery, kill -9."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.chain import link
from nextmodel_proxy.ledger.receipts import CONTENT_COLUMNS, Receipt, get_receipt, new_receipt_id
from nextmodel_proxy.ledger.writer import Ledger, LedgerUnavailable, verify
from nextmodel_proxy.timespec import utc_now_text

ROOT = Path(__file__).resolve().parents[1]


def make_receipt(i: int = 0, **changes) -> Receipt:
    """A receipt with every field set to something other than its default."""
    base = Receipt(
        receipt_id=new_receipt_id(),
        created_utc=utc_now_text(),
        request_id=f"req-{i}",
        key_id=f"key_{i % 2}",
        project=f"proj-{i % 3}",
        team="team-a",
        environment="prod",
        tags=("batch", f"n{i}"),
        endpoint="chat",
        model_requested="fast",
        model="gpt-4o-mini",
        provider="openai",
        upstream_model="gpt-4o-mini-2024-07-18",
        route="fast",
        served_mode="fresh",
        stream=True,
        status=200,
        error_code="stream_incomplete",
        prompt_tokens=2006,
        completion_tokens=300,
        cached_tokens=1920,
        cache_write_tokens=10,
        reasoning_tokens=64,
        usage_source="upstream",
        upstream_cost_usd=Decimal("0.005615"),
        billed_cost_usd=Decimal("0.005615"),
        fresh_cost_usd=Decimal("0.005615"),
        savings_usd=Decimal("0"),
        cost_unknown_reason="n/a",
        display_currency="GBP",
        display_rate=Decimal("0.79"),
        latency_ms=12,
        ttft_ms=3.25,
        reused_receipt_id="rcpt_0",
        upstream_request_id="req_abc",
        price_version="0123456789ab",
        cache_key="k" * 32,
        cache_status="miss",
        attempts=({"provider": "openai", "status": 200, "ms": 11.5},),
    )
    return dataclasses.replace(base, **changes)


async def started(path: Path, **kw) -> Ledger:
    ledger = Ledger(str(path), **kw)
    await ledger.start()
    return ledger


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]


async def wait_healthy(ledger: Ledger, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ledger.healthy:
        assert time.monotonic() < deadline, "ledger did not recover"
        await asyncio.sleep(0.02)


async def test_concurrent_submits_share_few_transactions(tmp_path: Path) -> None:
    ledger = await started(tmp_path / "l.db", max_batch=1024)
    gate = threading.Event()
    held = ledger.submit_op(lambda _conn: gate.wait(5))  # keep the writer busy while requests pile up
    futures = [ledger.submit(make_receipt(i)) for i in range(2000)]
    gate.set()
    await held
    await asyncio.gather(*futures)
    assert ledger.written == 2000
    assert ledger.commits <= 1 + 2 + 1  # the held op's batch, then 2000 receipts in batches of up to 1024
    await ledger.close()
    assert count(tmp_path / "l.db") == 2000
    assert verify(db.connect(tmp_path / "l.db", readonly=True)).ok


async def test_every_receipt_field_round_trips(tmp_path: Path) -> None:
    ledger = await started(tmp_path / "l.db")
    sent = [
        make_receipt(1),
        make_receipt(
            2,
            billed_cost_usd=None,
            upstream_cost_usd=None,
            fresh_cost_usd=None,
            savings_usd=None,
            stream=False,
            tags=(),
            attempts=(),
            latency_ms=None,
        ),
    ]
    for receipt in sent:
        await ledger.submit(receipt)
    await ledger.close()
    conn = db.connect(tmp_path / "l.db", readonly=True)
    got = [get_receipt(conn, r.receipt_id) for r in sent]
    assert got[0].seq == 1 and got[1].seq == 2
    assert got[0].prev_hash == "0" * 64 and got[1].prev_hash == got[0].hash
    for want, have in zip(sent, got, strict=True):
        assert dataclasses.replace(have, seq=None, prev_hash=None, hash=None) == dataclasses.replace(
            want, latency_ms=None if want.latency_ms is None else float(want.latency_ms)
        )
    stored = conn.execute("SELECT billed_cost_pusd, tags, stream FROM receipts WHERE seq = 1").fetchone()
    assert stored == (5_615_000_000, '["batch","n1"]', 1)


def _ledger_of(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    async def fill() -> list[str]:
        ledger = await started(tmp_path / "l.db")
        receipts = [make_receipt(i) for i in range(n)]
        await asyncio.gather(*(ledger.submit(r) for r in receipts))
        await ledger.close()
        return [r.receipt_id for r in receipts]

    return tmp_path / "l.db", asyncio.run(fill())


def test_verify_passes_an_intact_ledger(tmp_path: Path) -> None:
    path, _ids = _ledger_of(tmp_path, 50)
    result = verify(sqlite3.connect(path))
    assert result.ok and result.checked == 50 and result.first_bad_receipt_id is None


@pytest.mark.parametrize(
    ("tamper", "named", "word"),
    [
        ("UPDATE receipts SET billed_cost_pusd = 1 WHERE seq = 7", 6, "edited"),
        ("UPDATE receipts SET tags = '[]' WHERE seq = 1", 0, "edited"),
        ("DELETE FROM receipts WHERE seq IN (5, 6)", 6, "deleted"),
        ("DELETE FROM receipts WHERE seq = 1", 1, "deleted"),
    ],
)
def test_verify_names_the_first_edited_receipt_or_the_one_after_a_deletion(
    tmp_path, tamper, named, word
) -> None:
    path, ids = _ledger_of(tmp_path, 20)
    with sqlite3.connect(path) as conn:
        conn.execute(tamper)
    result = verify(sqlite3.connect(path))
    assert not result.ok and result.first_bad_receipt_id == ids[named] and word in result.reason


def test_verify_notices_the_newest_receipts_deleted(tmp_path: Path) -> None:
    path, ids = _ledger_of(tmp_path, 20)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM receipts WHERE seq > 18")
    result = verify(sqlite3.connect(path))
    assert not result.ok and result.checked == 18 and ids[17] in result.reason


def test_verify_names_a_receipt_inserted_with_a_forged_hash(tmp_path: Path) -> None:
    path, ids = _ledger_of(tmp_path, 20)
    with sqlite3.connect(path) as conn:
        # Make room after seq 10 and insert a row that chains correctly onto seq 10.
        conn.execute("UPDATE receipts SET seq = -seq WHERE seq > 10")
        conn.execute("UPDATE receipts SET seq = 1 - seq WHERE seq < 0")
        prev = conn.execute("SELECT hash FROM receipts WHERE seq = 10").fetchone()[0]
        values = list(
            conn.execute(f"SELECT {', '.join(CONTENT_COLUMNS)} FROM receipts WHERE seq = 10").fetchone()
        )
        values[0] = "rcpt_forged"
        conn.execute(
            f"INSERT INTO receipts (seq, {', '.join(CONTENT_COLUMNS)}, prev_hash, hash) "
            f"VALUES ({', '.join('?' * (len(values) + 3))})",
            (11, *values, prev, link(prev, values)),
        )
    result = verify(sqlite3.connect(path))
    assert not result.ok and result.first_bad_receipt_id == "rcpt_forged" and "inserted" in result.reason


def test_verify_names_a_receipt_appended_behind_the_ledgers_back(tmp_path: Path) -> None:
    path, _ids = _ledger_of(tmp_path, 5)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO receipts (receipt_id, created_utc, prev_hash) "
            "SELECT 'rcpt_extra', created_utc, hash FROM receipts WHERE seq = 5"
        )
    result = verify(sqlite3.connect(path))
    assert not result.ok and result.first_bad_receipt_id == "rcpt_extra"


async def test_locked_ledger_fails_closed_then_recovers_and_keeps_the_receipts(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = await started(path, busy_timeout_s=0.05, retry_s=0.05)
    await ledger.submit(make_receipt(0))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    with pytest.raises(LedgerUnavailable):
        await ledger.submit(make_receipt(1))
    assert not ledger.healthy
    with pytest.raises(LedgerUnavailable):
        await ledger.submit(make_receipt(2))  # fails at once while unhealthy
    blocker.execute("ROLLBACK")
    await wait_healthy(ledger)
    await ledger.submit(make_receipt(3))
    await ledger.close()
    assert count(path) == 4  # the two failed receipts were kept and written on recovery
    assert verify(sqlite3.connect(path)).ok


async def test_full_disk_fails_closed_then_recovers(tmp_path: Path) -> None:
    # Root ignores file modes, so "disk full" is simulated honestly with SQLite's own page limit on the writer
    # connection: inserts then fail with SQLITE_FULL exactly as they would on a full disk.
    path = tmp_path / "l.db"
    ledger = await started(path, retry_s=0.05)
    pages = await ledger.submit_op(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await ledger.submit_op(lambda c: c.execute(f"PRAGMA max_page_count = {pages}").fetchone())
    futures = [ledger.submit(make_receipt(i, cache_key="x" * 2000)) for i in range(50)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert any(isinstance(r, LedgerUnavailable) for r in results)  # the first pages may still have fitted
    assert all(r is None or isinstance(r, LedgerUnavailable) for r in results)
    assert not ledger.healthy
    await ledger.submit_op(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
    await wait_healthy(ledger)
    await ledger.close()
    assert count(path) == 50
    assert verify(sqlite3.connect(path)).ok


async def test_close_flushes_everything_queued(tmp_path: Path) -> None:
    ledger = await started(tmp_path / "l.db")
    futures = [ledger.submit(make_receipt(i)) for i in range(500)]
    await ledger.close()
    await asyncio.sleep(0)
    assert all(f.done() and f.exception() is None for f in futures)
    assert count(tmp_path / "l.db") == 500
    with pytest.raises(LedgerUnavailable):
        await ledger.submit(make_receipt(501))


async def test_an_op_error_fails_only_that_op(tmp_path: Path) -> None:
    ledger = await started(tmp_path / "l.db")
    await ledger.submit_op(lambda c: c.execute("CREATE TABLE scratch (x INTEGER)"))

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO scratch VALUES (1)")
        raise ValueError("boom")

    receipt_future = ledger.submit(make_receipt(0))
    bad_future = ledger.submit_op(bad)
    good_future = ledger.submit_op(lambda c: c.execute("INSERT INTO scratch VALUES (2)").rowcount)
    assert await good_future == 1
    await receipt_future
    with pytest.raises(ValueError, match="boom"):
        await bad_future
    assert ledger.healthy
    await ledger.close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        assert conn.execute("SELECT x FROM scratch").fetchall() == [(2,)]


async def test_a_duplicate_receipt_id_is_rejected_alone(tmp_path: Path) -> None:
    ledger = await started(tmp_path / "l.db")
    first = make_receipt(0)
    await ledger.submit(first)
    futures = [ledger.submit(make_receipt(1)), ledger.submit(first), ledger.submit(make_receipt(2))]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] is None and results[2] is None and isinstance(results[1], ValueError)
    assert ledger.healthy
    await ledger.close()
    assert count(tmp_path / "l.db") == 3
    assert verify(sqlite3.connect(tmp_path / "l.db")).ok


_LOAD_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, sys.argv[2])
    from tests.test_ledger import make_receipt
    from nextmodel_proxy.ledger.writer import Ledger

    async def main():
        ledger = Ledger(sys.argv[1])
        await ledger.start()
        i = 0
        while True:
            await asyncio.gather(*(ledger.submit(make_receipt(i + j)) for j in range(300)))
            i += 300

    asyncio.run(main())
""")


def test_kill_9_under_load_leaves_an_intact_verifiable_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = subprocess.Popen([sys.executable, "-c", _LOAD_SCRIPT, str(path), str(ROOT)])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if path.exists() and _rows_or_zero(path) >= 1000:
                break
        time.sleep(0.3)  # kill mid-stream, not at a quiet moment
        assert proc.poll() is None, "the load script died on its own"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    result = verify(conn)
    assert result.ok and result.checked >= 1000


def _rows_or_zero(path: Path) -> int:
    try:
        return count(path)
    except sqlite3.OperationalError:
        return 0


async def test_a_malformed_receipt_is_quarantined_not_failed_in_the_batch(tmp_path: Path) -> None:
    ledger = await started(tmp_path / "l.db")
    await ledger.submit(make_receipt(0, billed_cost_usd=0.1))  # a float is not money: quarantined at once
    await ledger.submit(make_receipt(1))
    assert ledger.healthy and ledger.dead_letter.count == 1
    await ledger.close()
    assert count(tmp_path / "l.db") == 1
    (line,) = (tmp_path / "l.db.dead-letter.jsonl").read_bytes().splitlines()
    assert "money must be a Decimal" in orjson.loads(line)["reason"]


async def test_a_ledger_not_started_refuses_receipts(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "l.db"))
    with pytest.raises(LedgerUnavailable):
        await ledger.submit(make_receipt(0))


@pytest.mark.parametrize(
    "changes",
    [{"served_mode": "cached"}, {"usage_source": "guess"}, {"billed_cost_usd": None}, {"savings_usd": None}],
)
def test_a_receipt_refuses_unknown_modes_and_half_known_costs(changes: dict) -> None:
    with pytest.raises(ValueError):
        make_receipt(0, **changes)


def test_ledger_unavailable_answers_503_ledger_unavailable() -> None:
    error = LedgerUnavailable("disk full").proxy_error()
    assert (error.status, error.code, error.headers) == (503, "ledger_unavailable", {"retry-after": "1"})
