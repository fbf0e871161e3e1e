"""Times on the command line and the API: ISO 8601 or relative (`24h` = 24 hours ago); the ledger's UTC text."""

from __future__ import annotations

import datetime as dt
import re

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Receipts store created_utc in this fixed-width form, so text order is time order.


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 (date, or datetime with Z/offset; naive means UTC) or `30s/15m/24h/7d/2w`."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "a time is ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z) or relative (30s, 15m, 24h, 7d, 2w)"
        )
    match = _RELATIVE.match(text)
    if match:
        base = now or dt.datetime.now(dt.UTC)
        return _as_utc(base) - dt.timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})
    value = text.strip()
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        return _as_utc(dt.datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z) or 30s, 15m, 24h, 7d, 2w"
        ) from None


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def format_utc(value: dt.datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (naive means UTC), the form receipts store."""
    # isoformat with timespec is several times faster than strftime and gives the same text.
    return _as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def utc_now_text() -> str:
    return format_utc(dt.datetime.now(dt.UTC))
