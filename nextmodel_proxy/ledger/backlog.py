"""Receipts the writer holds outside SQLite: the backlog of an outage and the dead-letter file.

Backlog: receipts of served answers kept while the ledger cannot be written. Memory first (up to
`memory_limit`), then an append-only spool file beside the ledger (`<ledger>.spool.jsonl`), drained in
bounded batches once writes succeed again. A spool left by a killed process is drained at the next start.

Dead letter: a receipt that cannot be written even alone (not because the file is unavailable, but because
something in it cannot be stored) goes to `<ledger>.dead-letter.jsonl`, one JSON object a line with the raw
facts, safely encoded, so the rest of its group commits. Counted in /healthz and by `receipts verify`.
Both files are used only by the writer thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from nextmodel_proxy.ledger.receipts import CONTENT_COLUMNS
from nextmodel_proxy.text_safety import encodable, safe_json

log = logging.getLogger(__name__)
Row = tuple[Any, ...]


def spool_path(ledger_path: str | Path) -> Path:
    return Path(f"{ledger_path}.spool.jsonl")


def dead_letter_path(ledger_path: str | Path) -> Path:
    return Path(f"{ledger_path}.dead-letter.jsonl")


def count_lines(path: Path) -> int:
    """Complete lines in a file (0 when it does not exist)."""
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


class DeadLetter:
    """Append-only quarantine for receipts that cannot be stored; `count` includes earlier runs."""

    def __init__(self, ledger_path: str | Path) -> None:
        self.path = dead_letter_path(ledger_path)
        self.count = count_lines(self.path)

    def add(self, facts: Mapping[str, Any], reason: str) -> None:
        record = {
            "quarantined_utc": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "reason": encodable(reason),
            "receipt": safe_json(dict(facts)),
        }
        line = orjson.dumps(record) + b"\n"
        try:
            with self.path.open("ab") as f:
                f.write(line)
        except OSError as exc:  # the disk is full too: the log line is all that is left
            log.error("dead-letter file %s not writable (%s); receipt: %s", self.path, exc, line[:2000])
        self.count += 1
        log.error("receipt %s quarantined to %s: %s", record["receipt"].get("receipt_id"), self.path, reason)

    def add_row(self, values: Row, reason: str) -> None:
        self.add(dict(zip(CONTENT_COLUMNS, values, strict=False)), reason)


class Backlog:
    """Served receipts waiting for the ledger to take writes again (see the module docstring)."""

    def __init__(self, ledger_path: str | Path, *, memory_limit: int, hard_limit: int) -> None:
        self.path = spool_path(ledger_path)
        self.memory_limit = memory_limit
        self.hard_limit = hard_limit
        self.dropped = 0  # receipts lost because memory and the spool were both full (logged each time)
        self.spooled_total = 0
        self._memory: deque[Row] = deque()
        self._spooled = count_lines(self.path)  # rows in the spool not yet written (earlier runs too)
        self._offset = 0  # byte offset of the first unwritten spool row
        self._taken: tuple[list[Row], int, int] | None = None  # (memory rows, spool rows, old offset)

    def __len__(self) -> int:
        return len(self._memory) + self._spooled

    @property
    def spooled(self) -> int:
        return self._spooled

    def keep(self, row: Row) -> None:
        if not self._spooled and len(self._memory) < self.memory_limit:
            self._memory.append(row)
            return
        try:
            with self.path.open("ab") as f:
                f.write(orjson.dumps(safe_json(row)) + b"\n")
            self._spooled += 1
            self.spooled_total += 1
            return
        except OSError as exc:
            spool_error = exc
        if len(self._memory) < self.hard_limit:
            self._memory.append(row)
            return
        self.dropped += 1
        log.error("receipt backlog full and spool not writable (%s): dropped receipt %s", spool_error, row[0])

    def spill(self) -> int:
        """Append every row held in memory to the spool (at close, when the ledger still cannot be written),
        so the next start writes them; returns how many could not be saved."""
        if not self._memory:
            return 0
        try:
            with self.path.open("ab") as f:
                f.write(b"".join(orjson.dumps(safe_json(row)) + b"\n" for row in self._memory))
        except OSError as exc:
            log.error("could not save %d kept receipt(s) to %s: %s", len(self._memory), self.path, exc)
            return len(self._memory)
        self._spooled += len(self._memory)
        self.spooled_total += len(self._memory)
        self._memory.clear()
        return 0

    def take(self, n: int) -> list[Row]:
        """Up to n rows, oldest first (memory, then spool). Then done(True) after a commit, done(False) to put
        them back."""
        rows = [self._memory.popleft() for _ in range(min(n, len(self._memory)))]
        memory_rows = list(rows)
        old_offset, from_spool = self._offset, 0
        if len(rows) < n and self._spooled:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                while len(rows) < n and from_spool < self._spooled:
                    line = f.readline()
                    if not line.endswith(b"\n"):
                        break  # a torn last line (killed while writing): nothing complete left
                    from_spool += 1
                    try:
                        rows.append(tuple(orjson.loads(line)))
                    except orjson.JSONDecodeError:
                        log.error("unreadable line in %s skipped", self.path)
                self._offset = f.tell()
        self._taken = (memory_rows, from_spool, old_offset)
        return rows

    def done(self, committed: bool) -> None:
        if self._taken is None:
            return
        memory_rows, from_spool, old_offset = self._taken
        self._taken = None
        if not committed:
            self._memory.extendleft(reversed(memory_rows))
            self._offset = old_offset
            return
        self._spooled -= from_spool
        if from_spool and self._spooled <= 0:
            self._spooled, self._offset = 0, 0
            try:
                os.truncate(self.path, 0)
            except OSError as exc:
                log.error("could not empty the spool %s: %s", self.path, exc)
