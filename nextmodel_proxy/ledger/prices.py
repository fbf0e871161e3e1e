"""The prices table: every resolved price a receipt used, stored once by price_version (written through the
ledger writer as an op queued before the receipt, so it commits in the same or an earlier transaction)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from nextmodel_proxy.price_resolve import ResolvedPrice
from nextmodel_proxy.timespec import format_utc

_COLUMNS = (
    "price_version",
    "model",
    "currency",
    "input",
    "output",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "schedule_from",
    "price_tier",
    "price_window",
    "service_tier",
    "brackets",
    "source",
    "as_of",
    "first_seen_utc",
)
_INSERT = f"INSERT OR IGNORE INTO prices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def price_row(price: ResolvedPrice, seen_utc: Any) -> tuple[Any, ...]:
    data = price.as_json()
    brackets = data.pop("brackets")
    return (
        *(data[c] for c in _COLUMNS[:12]),
        orjson.dumps(brackets).decode() if brackets else None,
        data["source"],
        data["as_of"],
        format_utc(seen_utc),
    )


def insert_price(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    conn.execute(_INSERT, row)


def get_price(conn: sqlite3.Connection, version: str) -> dict[str, Any] | None:
    """A stored price by version (the `prices show --json` form), None when unknown."""
    try:
        cur = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM prices WHERE price_version = ?", (version,))
    except sqlite3.OperationalError:  # a ledger from before m041
        return None
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip(_COLUMNS, row, strict=True))
    out["brackets"] = orjson.loads(out["brackets"]) if out["brackets"] else []
    return out


UNIT_FIELDS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")


def unit_prices_line(price: dict[str, Any]) -> str:
    """'input 0.4, output 4, ... CNY per 1M tokens' (fields not set are left out)."""
    parts = [f"{name} {price[name]}" for name in UNIT_FIELDS if price.get(name) is not None]
    return f"{', '.join(parts)} {price['currency']} per 1M tokens"


class PriceRecorder:
    """Queues each price version once per process; a version whose op failed is queued again next time."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def record(self, ledger: Any, price: ResolvedPrice | None, now: Any) -> None:
        if price is None or ledger is None or price.version in self._seen:
            return
        self._seen.add(price.version)
        row = price_row(price, now)
        try:
            future = ledger.submit_op(lambda conn: insert_price(conn, row))
        except Exception:  # the ledger is closed: the receipt will fail the same way
            self._seen.discard(price.version)
            return
        future.add_done_callback(
            lambda f: f.cancelled() or f.exception() is None or self._seen.discard(price.version)
        )
