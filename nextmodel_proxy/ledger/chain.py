"""The receipts hash chain: hash = sha256(prev_hash || canonical row content); verify finds the first break."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from nextmodel_proxy.ledger.receipts import CORE_WIDTH, SELECT_COLUMNS

GENESIS = "0" * 64  # prev_hash of the first receipt
_LOOKBACK = 16  # how far back an inserted run of receipts is recognised


def content_bytes(values: Sequence[Any]) -> bytes:
    """Canonical bytes of a row's stored content columns (JSON array; SQLite types map 1:1 onto JSON).
    Columns added after m001 that are NULL at the end are left out, so rows written before them verify."""
    values = values if isinstance(values, tuple | list) else list(values)
    end = len(values)
    while end > CORE_WIDTH and values[end - 1] is None:
        end -= 1
    return orjson.dumps(values if end == len(values) else values[:end])


def link(prev_hash: str, values: Sequence[Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + content_bytes(values)).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_receipt_id: str | None = None
    reason: str | None = None


def verify(conn: sqlite3.Connection, *, chunk: int = 5000) -> VerifyResult:
    """Walk the ledger in seq order; name the first receipt edited, inserted, or following a deletion."""
    expected_prev, last_seq, last_id, checked = GENESIS, 0, None, 0
    recent: deque[tuple[str, str]] = deque(maxlen=_LOOKBACK)  # (hash, receipt_id of the row after it)
    cur = conn.execute(f"SELECT {SELECT_COLUMNS} FROM receipts ORDER BY seq")
    while rows := cur.fetchmany(chunk):
        for row in rows:
            seq, receipt_id, prev_hash, row_hash, values = row[0], row[1], row[-2], row[-1], row[1:-2]
            checked += 1
            bad = _check_row(seq, receipt_id, prev_hash, row_hash, values, last_seq, expected_prev, recent)
            if bad is not None:
                return VerifyResult(False, checked, *bad)
            recent.append((expected_prev, receipt_id))
            expected_prev, last_seq, last_id = row_hash, seq, receipt_id
    return _check_tail(conn, checked, last_seq, last_id)


def _check_row(
    seq: int,
    receipt_id: str,
    prev_hash: str | None,
    row_hash: str | None,
    values: Sequence[Any],
    last_seq: int,
    expected_prev: str,
    recent: deque[tuple[str, str]],
) -> tuple[str, str] | None:
    """(receipt to name, reason) when this row breaks the chain, else None."""
    if seq != last_seq + 1:
        return receipt_id, f"seq {last_seq + 1}..{seq - 1} missing: receipt(s) deleted before {receipt_id}"
    if prev_hash != expected_prev:
        # A row whose prev_hash points further back means the rows in between were inserted.
        for older_hash, next_id in recent:
            if older_hash == prev_hash:
                return next_id, f"{next_id} was inserted (the chain skips from before it to {receipt_id})"
        return receipt_id, f"chain broken at {receipt_id}: a receipt before it was deleted or rewritten"
    if link(prev_hash, values) != row_hash:
        return receipt_id, f"{receipt_id} was edited (its content no longer matches its hash)"
    return None


def _check_tail(conn: sqlite3.Connection, checked: int, last_seq: int, last_id: str | None) -> VerifyResult:
    """AUTOINCREMENT remembers the highest seq ever used, so deleting the newest receipts shows too."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'receipts'").fetchone()
    highest = row[0] if row else 0
    if highest > last_seq:
        after = f" after {last_id}" if last_id else ""
        return VerifyResult(
            False,
            checked,
            None,
            f"the newest {highest - last_seq} receipt(s){after} were deleted (seq up to {highest})",
        )
    return VerifyResult(True, checked)
