"""The single SQLite writer: a queue drained by one thread, group commit, the receipts hash chain.

Failure policy. A commit that fails because the file cannot take writes (disk full, locked, read-only: the
SQLite codes in _UNAVAILABLE_CODES) rolls back the batch, fails every waiting future with LedgerUnavailable
(the request answers 503 ledger_unavailable) and marks the ledger unhealthy. While unhealthy, submit() fails
new receipts at once. Receipts of answers that were served are kept in the backlog (memory, then a spool
file beside the ledger; ledger/backlog.py); refusals (`served=False`) are only counted per error code. The
writer retries with a short backoff; each retry writes the queued ops and at most `backlog_batch` kept
receipts, so a returning disk is never asked for the whole backlog at once; the first commit that succeeds
makes the ledger healthy, and the rest of the backlog drains in bounded batches alongside new receipts.

Any other failure belongs to a receipt, not to the file: the run is split in halves until the receipt that
cannot be written is found; it alone is quarantined to the dead-letter file, every other receipt commits.
A duplicate receipt id is rejected alone (its future fails with ValueError). Ops (submit_op) are not
retried: their futures fail and their callers decide.

submit/submit_op are called on the event loop thread; results come back with one call_soon_threadsafe per
batch. Ops must not BEGIN/COMMIT themselves: they run inside the writer's transaction, each in a savepoint.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.backlog import Backlog, DeadLetter
from nextmodel_proxy.ledger.chain import VerifyResult, verify
from nextmodel_proxy.ledger.receipts import Receipt, content_values, receipt_facts
from nextmodel_proxy.ledger.rows import Row, chain, insert_rows, ledger_head

__all__ = ["Ledger", "LedgerUnavailable", "VerifyResult", "verify"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Primary SQLite result codes that mean "the file cannot take writes now", not "this op is wrong".
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
_MAX_BACKOFF_S = 1.0  # a returning disk is noticed within a second


class LedgerUnavailable(Exception):
    """The ledger could not commit; the request fails closed with 503 ledger_unavailable."""

    def proxy_error(self) -> ProxyError:
        return ProxyError(
            503,
            f"The proxy cannot record receipts right now ({self}), so the request was refused "
            "rather than served unrecorded; it recovers by itself, retry shortly.",
            "ledger_unavailable",
            headers={"retry-after": "1"},
        )


@dataclass(slots=True)
class _Item:
    values: Row | None  # a receipt's content values (receipts.content_values)
    op: Callable[[sqlite3.Connection], Any] | None
    future: asyncio.Future[Any] | None  # None once already failed (a receipt kept for retry)
    served: bool = True  # an answer was served: kept through an outage (a refusal is only counted)
    code: str | None = None  # the receipt's error code, to count a refusal dropped during an outage


_STOP = _Item(None, None, None)
Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _is_unavailable(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _UNAVAILABLE_CODES


class Ledger:
    """Owns the one write connection; everything that writes while the proxy runs goes through it."""

    def __init__(
        self,
        path: str,
        *,
        max_batch: int = 1024,
        retry_s: float = 0.5,
        busy_timeout_s: float = 5.0,
        max_pending: int = 100_000,
        memory_backlog: int = 10_000,
        backlog_batch: int = 500,
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self.retry_s = retry_s
        self.busy_timeout_s = busy_timeout_s
        self.backlog_batch = backlog_batch
        self.commits = 0  # committed transactions (group commit: fewer than receipts under load)
        self.written = 0  # receipts committed
        self.refused_while_unavailable: dict[str, int] = {}  # refusals not kept during an outage, per code
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        # receipts kept from failed commits (writer thread only): memory, then a spool file past memory_backlog
        self.backlog = Backlog(path, memory_limit=min(memory_backlog, max_pending), hard_limit=max_pending)
        self.dead_letter = DeadLetter(path)
        self._healthy = True
        self._open = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._head = ""
        self._failures = 0  # consecutive failed commits, for the backoff
        self.write_errors = 0  # failed commits since start (/metrics)

    @property
    def healthy(self) -> bool:
        """False after a failed commit until a later commit succeeds."""
        return self._healthy

    @property
    def queue_depth(self) -> int:
        """Receipts and operations waiting for the writer (approximate: read across threads)."""
        return self._queue.qsize() + self.pending

    async def start(self) -> None:
        """Open and migrate the file in the writer thread; raises what opening raised."""
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="nmproxy-ledger", daemon=True)
        self._thread.start()
        await ready
        self._open = True

    def submit(self, receipt: Receipt, *, served: bool = True) -> asyncio.Future[None]:
        """Queue a receipt (never blocks); the future resolves once its transaction has committed.
        `served=False` for a refusal (no answer was served): during an outage it is counted, not kept.
        A receipt that cannot even be converted to its stored values is quarantined at once (the future
        resolves: its facts are in the dead-letter file) instead of failing a batch in the writer."""
        future = self._new_future()
        try:
            values = content_values(receipt)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, it must not stop the others
            self.dead_letter.add(receipt_facts(receipt), f"cannot be stored: {type(exc).__name__}: {exc}")
            future.set_result(None)
            return future
        if not self._open:
            future.set_exception(LedgerUnavailable("the ledger is closed"))
        elif not self._healthy:
            future.set_exception(LedgerUnavailable("the ledger cannot be written (kept for retry)"))
            if served:
                self._queue.put(_Item(values, None, None))
            else:
                self._count_refused(receipt.error_code)
        else:
            self._queue.put(_Item(values, None, future, served, receipt.error_code))
        return future

    def _count_refused(self, code: str | None) -> None:
        key = code or "unknown"
        self.refused_while_unavailable[key] = self.refused_while_unavailable.get(key, 0) + 1

    @property
    def pending(self) -> int:
        """Receipts kept through an outage and not yet written (memory and spool)."""
        return len(self.backlog)

    def submit_op(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run fn(conn) in the writer, inside the next group transaction; resolves with its result."""
        future = self._new_future()
        if not self._open:
            future.set_exception(LedgerUnavailable("the ledger is closed"))
        else:
            self._queue.put(_Item(None, fn, future))
        return future

    async def close(self) -> None:
        """Stop accepting, commit everything queued, then close the connection."""
        if not self._open or self._thread is None:
            return
        self._open = False
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _new_future(self) -> asyncio.Future[Any]:
        loop = self._loop or asyncio.get_running_loop()
        return loop.create_future()

    # --- writer thread ---------------------------------------------------------------------------

    def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            self._conn = db.connect(self.path, timeout_s=self.busy_timeout_s)
            db.migrate(self._conn)
            self._head = ledger_head(self._conn)
        except (sqlite3.Error, OSError) as exc:
            self._call_loop(_settle, [(ready, None, exc)])
            return
        self._call_loop(_settle, [(ready, None, None)])
        try:
            stop = False
            while not stop:
                batch, stop = self._collect()
                self._commit(batch)
            # at close: drain what is kept while commits succeed (bounded batches), without backoff waits
            while len(self.backlog) and self._commit([]):
                pass
            if len(self.backlog):  # still not writable: keep them in the spool for the next start
                lost = self.backlog.spill()
                log.error(
                    "ledger closed with %d receipt(s) it could not write, kept in %s for the next start%s",
                    len(self.backlog),
                    self.backlog.path,
                    f"; {lost} could not be saved" if lost else "",
                )
        finally:
            self._conn.close()

    def _collect(self) -> tuple[list[_Item], bool]:
        """Healthy: block for work, then take what is queued up to max_batch. Unhealthy: gather until the
        retry is due, failing receipts at once and keeping them for the retry."""
        batch: list[_Item] = []
        if self._healthy:
            if len(self.backlog):  # healthy with a backlog: keep draining it, do not block for new work
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return batch, False
            else:
                item = self._queue.get()
            while item is not _STOP:
                batch.append(item)
                if len(batch) >= self.max_batch:
                    return batch, False
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return batch, False
            return batch, True
        deadline = time.monotonic() + self._backoff_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            if item.values is not None:
                self._keep_or_count(item)
                if item.future is not None:
                    self._call_loop(
                        _settle, [(item.future, None, LedgerUnavailable("the ledger cannot be written"))]
                    )
            else:
                batch.append(item)
        return batch, False

    def _keep_or_count(self, item: _Item) -> None:
        assert item.values is not None
        if item.served:
            self.backlog.keep(item.values)
        else:
            self._count_refused(item.code)

    def _commit(self, batch: list[_Item]) -> bool:
        """One transaction for the batch plus at most backlog_batch kept receipts; True when it committed."""
        assert self._conn is not None
        retried = self.backlog.take(self.backlog_batch) if len(self.backlog) else []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            outcomes, head, written = self._apply(batch, self._not_yet_written(retried))
            self._conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - nothing may kill the only writer; fail closed and say so
            if not isinstance(exc, sqlite3.Error):
                log.exception("ledger writer error")
            self.backlog.done(False)
            self._failed(batch, exc)
            return False
        self.backlog.done(True)
        self._head = head
        self._healthy = True
        self._failures = 0
        self.commits += 1
        self.written += written
        self._call_loop(_settle, outcomes)
        return True

    def _not_yet_written(self, rows: list[Row]) -> list[Row]:
        """Kept rows minus those already in the ledger (a spool left by a process killed mid-drain)."""
        if not rows:
            return rows
        assert self._conn is not None
        ids = [row[0] for row in rows]
        present = {
            r[0]
            for r in self._conn.execute(
                f"SELECT receipt_id FROM receipts WHERE receipt_id IN ({', '.join('?' * len(ids))})", ids
            )
        }
        return [row for row in rows if row[0] not in present] if present else rows

    def _apply(self, batch: list[_Item], retried: list[Row]) -> tuple[list[Outcome], str, int]:
        """Write the batch in order (consecutive receipts in one executemany), then the retried receipts.
        Retries only exist while unhealthy, when the batch holds only ops: those run first because their
        callers are still waiting, while the retried receipts' callers were already answered."""
        outcomes: list[Outcome] = []
        head = self._head
        written = [0]
        run: list[tuple[Row, asyncio.Future[Any] | None]] = []
        for item in batch:
            if item.values is not None:
                run.append((item.values, item.future))
                continue
            head = self._write_run(run, head, outcomes, written)
            run = []
            outcomes.append(self._run_op(item))
        run.extend((r, None) for r in retried)
        return outcomes, self._write_run(run, head, outcomes, written), written[0]

    def _write_run(
        self,
        run: list[tuple[Row, asyncio.Future[Any] | None]],
        head: str,
        outcomes: list[Outcome],
        written: list[int],
    ) -> str:
        """INSERT a run of receipts in a savepoint. If the file is unavailable the error goes up (the whole
        transaction fails); any other error is the fault of a receipt in the run: split it in halves until
        that receipt is alone, then quarantine it (or reject it, for a duplicate id) so the others commit."""
        assert self._conn is not None
        if not run:
            return head
        self._conn.execute("SAVEPOINT receipts")
        try:
            rows, new_head = chain([values for values, _ in run], head)
            insert_rows(self._conn, rows)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            if _is_unavailable(exc):
                raise
            self._conn.execute("ROLLBACK TO receipts")
            self._conn.execute("RELEASE receipts")
            if len(run) > 1:
                half = len(run) // 2
                head = self._write_run(run[:half], head, outcomes, written)
                return self._write_run(run[half:], head, outcomes, written)
            rejected = self._reject(run[0], exc)
            if rejected is not None:
                outcomes.append(rejected)
            return head
        self._conn.execute("RELEASE receipts")
        written[0] += len(run)
        outcomes.extend((future, None, None) for _, future in run if future is not None)
        return new_head

    def _reject(self, one: tuple[Row, asyncio.Future[Any] | None], exc: Exception) -> Outcome | None:
        """The one receipt that cannot be written: a duplicate id is refused (it is already recorded), any
        other is quarantined to the dead-letter file and its request goes on as recorded."""
        values, future = one
        assert self._conn is not None
        duplicate = (
            isinstance(exc, sqlite3.IntegrityError)
            and self._conn.execute("SELECT 1 FROM receipts WHERE receipt_id = ?", (values[0],)).fetchone()
        )
        if duplicate:
            log.error("ledger rejected receipt %s: %s", values[0], exc)
            error: BaseException | None = ValueError(f"receipt {values[0]} rejected: {exc}")
        else:
            self.dead_letter.add_row(values, f"cannot be written: {type(exc).__name__}: {exc}")
            error = None
        return (future, None, error) if future is not None else None

    def _run_op(self, item: _Item) -> Outcome:
        """An op runs in a savepoint: its own error fails only its future, a ledger-level error the batch."""
        assert self._conn is not None and item.op is not None and item.future is not None
        self._conn.execute("SAVEPOINT op")
        try:
            result = item.op(self._conn)
        except Exception as exc:  # noqa: BLE001 - the op's error belongs to its caller, not the writer
            if _is_unavailable(exc):
                raise
            self._conn.execute("ROLLBACK TO op")
            self._conn.execute("RELEASE op")
            return item.future, None, exc
        self._conn.execute("RELEASE op")
        return item.future, result, None

    def _failed(self, batch: list[_Item], exc: Exception) -> None:
        assert self._conn is not None
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("ledger rollback failed")
        if self._healthy:
            log.error("ledger write failed, failing closed until it recovers: %s", exc)
        self._healthy = False
        self._failures += 1
        self.write_errors += 1
        error = LedgerUnavailable(f"the ledger cannot be written: {exc}")
        outcomes: list[Outcome] = []
        for item in batch:
            if item.values is not None:
                self._keep_or_count(item)
            if item.future is not None:
                outcomes.append((item.future, None, error))
        self._call_loop(_settle, outcomes)

    @property
    def _backoff_s(self) -> float:
        return min(self.retry_s * 2 ** max(self._failures - 1, 0), _MAX_BACKOFF_S)

    def _call_loop(self, fn: Callable[[list[Outcome]], None], outcomes: list[Outcome]) -> None:
        """One hop to the event loop per batch, not per receipt."""
        if not outcomes or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(fn, outcomes)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _settle(outcomes: list[Outcome]) -> None:
    for future, result, exc in outcomes:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
