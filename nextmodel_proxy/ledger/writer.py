"""The single SQLite writer: a queue drained by one thread, group commit, the receipts hash chain.

Failure policy: when a commit fails (disk full, file locked, read-only) the batch is rolled back, every
waiting future fails with LedgerUnavailable (the request answers 503 ledger_unavailable) and the ledger is
unhealthy. While unhealthy, submit() fails new receipts at once instead of letting requests wait, but keeps
them (up to max_pending) with the failed batch's receipts and retries them with backoff; when a retry commits,
they are written in order and the ledger is healthy again. So a receipt whose future failed is still
recorded once the file is writable: the spend happened even though the client saw a 503. Ops
(submit_op) are not retried: their futures fail and their callers decide. On a retry, queued ops run before the
kept receipts (their callers are still waiting; the receipts' callers were already answered).

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.chain import VerifyResult, verify
from nextmodel_proxy.ledger.receipts import Receipt, content_values
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
_MAX_BACKOFF_S = 5.0


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
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self.retry_s = retry_s
        self.busy_timeout_s = busy_timeout_s
        self.max_pending = max_pending
        self.commits = 0  # committed transactions (group commit: fewer than receipts under load)
        self.written = 0  # receipts committed
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._pending: deque[Row] = deque()  # receipts kept from failed commits; writer thread only
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
        return self._queue.qsize() + len(self._pending)

    async def start(self) -> None:
        """Open and migrate the file in the writer thread; raises what opening raised."""
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="nmproxy-ledger", daemon=True)
        self._thread.start()
        await ready
        self._open = True

    def submit(self, receipt: Receipt) -> asyncio.Future[None]:
        """Queue a receipt (never blocks); the future resolves once its transaction has committed.
        The receipt is converted to its stored values here, so a malformed one raises in the caller
        (TypeError/ValueError) instead of failing a whole batch in the writer."""
        values = content_values(receipt)
        future = self._new_future()
        if not self._open:
            future.set_exception(LedgerUnavailable("the ledger is closed"))
        elif not self._healthy:
            future.set_exception(LedgerUnavailable("the ledger cannot be written (kept for retry)"))
            self._queue.put(_Item(values, None, None))
        else:
            self._queue.put(_Item(values, None, future))
        return future

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
            if self._pending:
                self._commit([])  # one last try at close, without waiting out the backoff
            if self._pending:
                log.error("ledger closed with %d receipt(s) it could not write", len(self._pending))
        finally:
            self._conn.close()

    def _collect(self) -> tuple[list[_Item], bool]:
        """Healthy: block for work, then take what is queued up to max_batch. Unhealthy: gather until the
        retry is due, failing receipts at once and keeping them for the retry."""
        batch: list[_Item] = []
        if self._healthy:
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
                self._keep(item.values)
                if item.future is not None:
                    self._call_loop(
                        _settle, [(item.future, None, LedgerUnavailable("the ledger cannot be written"))]
                    )
            else:
                batch.append(item)
        return batch, False

    def _keep(self, values: Row) -> None:
        if len(self._pending) >= self.max_pending:
            dropped = self._pending.popleft()
            log.error("ledger retry buffer full: dropped receipt %s", dropped[0])
        self._pending.append(values)

    def _commit(self, batch: list[_Item]) -> None:
        """One transaction for the whole batch plus the receipts kept from failed commits."""
        assert self._conn is not None
        retried = list(self._pending)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            outcomes, head = self._apply(batch, retried)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the only writer; fail closed and say so
            log.exception("ledger writer error")
            self._failed(batch, exc)
            return
        self._pending.clear()
        self._head = head
        self._healthy = True
        self._failures = 0
        self.commits += 1
        self.written += sum(1 for item in batch if item.values is not None) + len(retried)
        self._call_loop(_settle, outcomes)

    def _apply(self, batch: list[_Item], retried: list[Row]) -> tuple[list[Outcome], str]:
        """Write the batch in order (consecutive receipts in one executemany), then the retried receipts.
        Retries only exist while unhealthy, when the batch holds only ops: those run first because their
        callers are still waiting, while the retried receipts' callers were already answered."""
        outcomes: list[Outcome] = []
        head = self._head
        run: list[tuple[Row, asyncio.Future[Any] | None]] = []
        for item in batch:
            if item.values is not None:
                run.append((item.values, item.future))
                continue
            head = self._write_run(run, head, outcomes)
            run = []
            outcomes.append(self._run_op(item))
        run.extend((r, None) for r in retried)
        return outcomes, self._write_run(run, head, outcomes)

    def _write_run(
        self, run: list[tuple[Row, asyncio.Future[Any] | None]], head: str, outcomes: list[Outcome]
    ) -> str:
        """INSERT a run of receipts; a constraint error (a duplicate receipt id) rejects only its receipt."""
        assert self._conn is not None
        if not run:
            return head
        rows, new_head = chain([values for values, _ in run], head)
        self._conn.execute("SAVEPOINT receipts")
        try:
            insert_rows(self._conn, rows)
        except sqlite3.IntegrityError:
            self._conn.execute("ROLLBACK TO receipts")
            new_head = self._write_one_by_one(run, head, outcomes)
        else:
            outcomes.extend((future, None, None) for _, future in run if future is not None)
        self._conn.execute("RELEASE receipts")
        return new_head

    def _write_one_by_one(
        self, run: list[tuple[Row, asyncio.Future[Any] | None]], head: str, outcomes: list[Outcome]
    ) -> str:
        assert self._conn is not None
        for values, future in run:
            rows, row_head = chain([values], head)
            self._conn.execute("SAVEPOINT one")
            try:
                insert_rows(self._conn, rows)
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK TO one")
                log.error("ledger rejected receipt %s: %s", values[0], exc)
                error: BaseException | None = ValueError(f"receipt {values[0]} rejected: {exc}")
            else:
                head, error = row_head, None
            self._conn.execute("RELEASE one")
            if future is not None:
                outcomes.append((future, None, error))
        return head

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
                self._keep(item.values)
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
