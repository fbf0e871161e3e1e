"""The single SQLite writer: group commit on the event loop, checkpoints in a thread, the receipts hash chain.

Group commit. submit/submit_op only append to a list and, once per loop iteration, schedule `_flush` with
call_soon: everything submitted during one iteration of the event loop commits in one transaction on the loop
thread itself, and the waiting futures are resolved right there. There is no hand-off to another thread per
receipt (measured: the hand-off cost three times the INSERT; BENCHMARKS.md). A commit appends to the WAL
(synchronous=NORMAL): once it returns, the receipt survives SIGKILL of the process, which is the guarantee the
callers rely on (an answer is released only after its receipt committed). Checkpoints, the part that copies
the WAL into the database file and fsyncs, run in a background thread on a connection of their own
(ledger/checkpoint.py); the writer's connection never checkpoints (wal_autocheckpoint=0).

Waiting for a lock never blocks the loop: the write connection has busy_timeout 0, and a BEGIN that finds the
file locked by another process (the CLI writing keys, say) is retried with call_later, backing off from 1 ms,
for up to `busy_timeout_s`; only then is the file unavailable.

Failure policy. A commit that fails because the file cannot take writes (disk full, locked for longer than
busy_timeout_s, read-only: the SQLite codes in _UNAVAILABLE_CODES) rolls back the batch, fails every waiting
future with LedgerUnavailable (the request answers 503 ledger_unavailable) and marks the ledger unhealthy.
While unhealthy, submit() fails new receipts at once. Receipts of answers that were served are kept in the
backlog (memory, then a spool file beside the ledger; ledger/backlog.py); refusals (`served=False`) are only
counted per error code. The writer retries with a backoff; each retry writes the queued ops and at most
`backlog_batch` kept receipts, so a returning disk is never asked for the whole backlog at once; the first
commit that succeeds makes the ledger healthy, and the rest of the backlog drains in bounded batches alongside
new receipts.

Any other failure belongs to a receipt, not to the file: the run is split in halves until the receipt that
cannot be written is found; it alone is quarantined to the dead-letter file, every other receipt commits.
A duplicate receipt id is rejected alone (its future fails with ValueError). Ops (submit_op) are not
retried: their futures fail and their callers decide.

Everything here runs on the event loop thread (open and migrate run in a worker thread at start). Ops must not
BEGIN/COMMIT themselves: they run inside the writer's transaction, each in a savepoint; they run on the loop,
so they must be short.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.backlog import Backlog, DeadLetter
from nextmodel_proxy.ledger.chain import VerifyResult, verify
from nextmodel_proxy.ledger.checkpoint import Checkpointer
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
_FIRST_BUSY_DELAY_S = 0.001  # waiting for another process's write lock: first retry, doubling up to the max
_MAX_BUSY_DELAY_S = 0.05


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
        in_flight: Callable[[], int] | None = None,
        max_group_wait_s: float = 0.005,
    ) -> None:
        self.path = path
        # requests being served now (the proxy's gauge): while some are doing something other than waiting for
        # a commit, a commit may wait a little for their receipts too (see _schedule)
        self.in_flight = in_flight
        self.max_group_wait_s = max_group_wait_s
        self._last_commit_s = 0.0  # how long the last commit took (sets how long the next one may wait)
        self.max_batch = max_batch
        self.retry_s = retry_s
        self.busy_timeout_s = busy_timeout_s
        self.backlog_batch = backlog_batch
        self.commits = 0  # committed transactions (group commit: fewer than receipts under load)
        self.written = 0  # receipts committed
        self.refused_while_unavailable: dict[str, int] = {}  # refusals not kept during an outage, per code
        self._queue: list[_Item] = []  # submitted, not yet in a transaction (oldest first)
        # receipts kept from failed commits: memory, then a spool file past memory_backlog
        self.backlog = Backlog(path, memory_limit=min(memory_backlog, max_pending), hard_limit=max_pending)
        self.dead_letter = DeadLetter(path)
        self._healthy = True
        self._open = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._head = ""
        self._timer: asyncio.Handle | None = None  # the scheduled flush or retry, if any
        self._delayed = False  # _timer is a flush waiting for more receipts (see _schedule)
        self._busy_since: float | None = None  # when the current wait for another process's lock began
        self._busy_delay = _FIRST_BUSY_DELAY_S
        self._failures = 0  # consecutive failed commits, for the backoff
        self.write_errors = 0  # failed commits since start (/metrics)

    @property
    def healthy(self) -> bool:
        """False after a failed commit until a later commit succeeds."""
        return self._healthy

    @property
    def queue_depth(self) -> int:
        """Receipts and operations waiting for the writer, plus receipts kept through an outage."""
        return len(self._queue) + self.pending

    async def start(self) -> None:
        """Open and migrate the file (in a worker thread: a migration may take a while); raises what opening
        raised. From then on the connection is used on this event loop's thread only."""
        self._loop = asyncio.get_running_loop()
        self._conn, self._head = await asyncio.to_thread(_open_writer, self.path, self.busy_timeout_s)
        self._checkpointer = Checkpointer(self.path, timeout_s=self.busy_timeout_s)
        self._checkpointer.start()
        self._open = True
        if len(self.backlog):  # a spool left by a killed process: drained in bounded batches from now on
            self._schedule()

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
            self._keep_or_count(values, served, receipt.error_code)
        else:
            self._queue.append(_Item(values, None, future, served, receipt.error_code))
            self._schedule()
        return future

    def _count_refused(self, code: str | None) -> None:
        key = code or "unknown"
        self.refused_while_unavailable[key] = self.refused_while_unavailable.get(key, 0) + 1

    @property
    def pending(self) -> int:
        """Receipts kept through an outage and not yet written (memory and spool)."""
        return len(self.backlog)

    def submit_op(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run fn(conn) in the next group transaction (on the loop: keep it short); resolves with its result.
        While the ledger is unhealthy it waits for the next retry."""
        future = self._new_future()
        if not self._open:
            future.set_exception(LedgerUnavailable("the ledger is closed"))
        else:
            self._queue.append(_Item(None, fn, future))
            if self._healthy:
                self._schedule()
        return future

    async def close(self) -> None:
        """Stop accepting, commit everything queued, then close the connection. Waits for locks as long as
        busy_timeout_s (blocking: the proxy is stopping); receipts that still cannot be written are spooled."""
        if not self._open or self._conn is None:
            return
        self._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        while self._queue:
            batch = self._take()
            if not self._commit(batch):
                self._fail_queued()
        # drain what is kept while commits succeed (bounded batches), without backoff waits
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
        self._conn.close()
        self._conn = None
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)

    def _new_future(self) -> asyncio.Future[Any]:
        loop = self._loop or asyncio.get_running_loop()
        return loop.create_future()

    # --- the group commit, on the loop ----------------------------------------------------------

    def _schedule(self) -> None:
        """Flush at the next loop iteration, unless a flush or a retry is already scheduled.

        Group commit under load: when other requests are in flight (still being served, so likely to submit a
        receipt soon), the commit waits up to ten times what the last commit took (at most max_group_wait_s)
        so that it carries theirs too: the writer then uses at most about a tenth of the loop however busy it
        is. When everything in flight is already waiting for this commit (one connection, say), it is not
        delayed at all. A delayed flush is brought forward once everyone in flight is waiting."""
        loop = self._loop
        if loop is None:
            return
        waiting = len(self._queue)
        now_due = self.in_flight is None or self.in_flight() <= waiting or waiting >= self.max_batch
        if self._timer is None:
            if now_due:
                self._timer = loop.call_soon(self._flush)
            else:
                wait = min(self.max_group_wait_s, 20 * self._last_commit_s)
                self._timer = loop.call_later(wait, self._flush) if wait > 0 else loop.call_soon(self._flush)
                self._delayed = True
        elif self._delayed and now_due:
            self._timer.cancel()
            self._timer = loop.call_soon(self._flush)
            self._delayed = False

    def _take(self) -> list[_Item]:
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        return batch

    def _flush(self) -> None:
        """One transaction for what was queued (up to max_batch) plus, while recovering, kept receipts."""
        self._timer, self._delayed = None, False
        if not self._open or self._loop is None:
            return
        batch = self._take()
        try:
            began = time.perf_counter()
            committed = self._commit(batch, wait_busy=self._healthy)
            self._last_commit_s = time.perf_counter() - began
            if committed:
                if self._queue or len(self.backlog):
                    self._schedule()  # the rest next iteration: the loop serves I/O in between
            elif self._timer is None:  # failed: retry after the backoff (a busy wait already rescheduled)
                self._fail_queued()
                self._timer = self._loop.call_later(self._backoff_s, self._flush)
        except Exception:  # noqa: BLE001 - a bug here must not leave futures hanging or stop later flushes
            log.exception("ledger writer error")
            self._schedule()

    def _commit(self, batch: list[_Item], *, wait_busy: bool = False) -> bool:
        """One transaction for the batch plus at most backlog_batch kept receipts; True when it committed.
        With wait_busy, a lock held by another process puts the batch back and retries it shortly."""
        assert self._conn is not None
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if wait_busy and self._wait_for_lock(batch, exc):
                return False
            self._failed(batch, exc)
            return False
        self._busy_since, self._busy_delay = None, _FIRST_BUSY_DELAY_S
        retried = self.backlog.take(self.backlog_batch) if len(self.backlog) else []
        try:
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
        if self._checkpointer is not None:
            self._checkpointer.wrote(written + len(batch))
        _settle(outcomes)
        return True

    def _wait_for_lock(self, batch: list[_Item], exc: sqlite3.Error) -> bool:
        """Another process holds the write lock: put the batch back and try again in a moment, unless the
        wait has lasted busy_timeout_s. True when a retry was scheduled."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return False
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        if now - self._busy_since >= self.busy_timeout_s or self._loop is None:
            self._busy_since, self._busy_delay = None, _FIRST_BUSY_DELAY_S
            return False
        self._queue[:0] = batch
        self._timer = self._loop.call_later(self._busy_delay, self._flush)
        self._busy_delay = min(self._busy_delay * 2, _MAX_BUSY_DELAY_S)
        return True

    def _keep_or_count(self, values: Row, served: bool, code: str | None) -> None:
        if served:
            self.backlog.keep(values)
        else:
            self._count_refused(code)

    def _fail_queued(self) -> None:
        """While unhealthy, receipts waiting behind a failed batch fail at once (kept or counted, like new
        ones); ops stay queued for the retry."""
        error = LedgerUnavailable("the ledger cannot be written")
        ops: list[_Item] = []
        for item in self._queue:
            if item.values is None:
                ops.append(item)
                continue
            self._keep_or_count(item.values, item.served, item.code)
            if item.future is not None and not item.future.done():
                item.future.set_exception(error)
        self._queue = ops

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
                self._keep_or_count(item.values, item.served, item.code)
            if item.future is not None:
                outcomes.append((item.future, None, error))
        _settle(outcomes)

    @property
    def _backoff_s(self) -> float:
        return min(self.retry_s * 2 ** max(self._failures - 1, 0), _MAX_BACKOFF_S)


def _open_writer(path: str, busy_timeout_s: float) -> tuple[sqlite3.Connection, str]:
    """Open and migrate (waiting up to busy_timeout_s for locks, in a worker thread), then set the connection
    up for the loop: never wait for a lock inside SQLite, never checkpoint. Returns it and the chain head."""
    conn = db.connect(path, timeout_s=busy_timeout_s)
    try:
        db.migrate(conn)
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn, ledger_head(conn)
    except BaseException:
        conn.close()
        raise


def _settle(outcomes: list[Outcome]) -> None:
    for future, result, exc in outcomes:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
