"""WAL checkpoints off the event loop: a thread with its own connection copies committed WAL frames into the
database file (and fsyncs it), so the writer's commits on the loop never pay for that.

The writer's connection has wal_autocheckpoint=0; `wrote(n)` tells this thread how many rows went in. It runs a
PASSIVE checkpoint once `every_rows` rows have been written since the last one, or `idle_s` after the last
write: PASSIVE never waits for, nor blocks, the writer or readers. If the thread or its checkpoints fail, the
WAL only grows (nothing is lost; SQLite checkpoints it when the last connection closes) and it is logged.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from nextmodel_proxy.ledger import schema as db

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(
        self, path: str, *, timeout_s: float = 5.0, every_rows: int = 2000, idle_s: float = 1.0
    ) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.every_rows = every_rows
        self.idle_s = idle_s
        self.checkpoints = 0
        self._rows = 0  # written since the last checkpoint (set on the loop, read here: an int is enough)
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nmproxy-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self, rows: int) -> None:
        """Called by the writer after each commit; wakes the thread once enough has been written."""
        self._rows += rows
        if self._rows >= self.every_rows:
            self._wake.set()

    def stop(self) -> None:
        """Stop the thread (blocking: call it from a worker thread) after a last checkpoint."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5)

    def _run(self) -> None:
        try:
            conn = db.connect(self.path, timeout_s=self.timeout_s)
        except (sqlite3.Error, OSError) as exc:
            log.error("ledger checkpoints disabled (%s): the WAL grows until the proxy stops", exc)
            return
        try:
            while not self._stopping:
                self._wake.wait(self.idle_s)
                self._wake.clear()
                if self._rows:
                    self._checkpoint(conn)
            if self._rows:
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        self._rows = 0
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            log.warning("ledger checkpoint failed (retried later): %s", exc)
