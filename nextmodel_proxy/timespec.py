"""Times and durations, one grammar for all of them: config, command line and API.

A duration is a number of seconds, or a number with a unit: `30s`, `15m`, `24h`, `7d`, `2w` (decimals allowed).
A time is ISO 8601 (`2026-01-31`, `2026-01-31T12:00:00Z`) or a duration ago (`24h` = 24 hours ago).
The ledger stores UTC as fixed-width text (format_utc), so text order is time order.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_HINT = "30s, 15m, 24h, 7d or 2w"


def parse_duration(value: Any) -> float:
    """Seconds from a non-negative number or a string like 90, 30s, 1.5h, 7d, 2w; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_S[match.group(2)]
    raise ValueError(f"must be a duration like {DURATION_HINT}, got {value!r}")


def _relative(text: str) -> float | None:
    """Seconds for a duration with a unit (a bare number is not read as a time)."""
    match = _DURATION.match(text)
    return float(match.group(1)) * _UNIT_S[match.group(2)] if match and match.group(2) else None


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 (date, or datetime with Z/offset; naive means UTC) or `30s/15m/24h/7d/2w`."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "a time is ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z) or relative (30s, 15m, 24h, 7d, 2w)"
        )
    seconds = _relative(text)
    if seconds is not None:
        return _as_utc(now or utc_now()) - dt.timedelta(seconds=seconds)
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
    if value.tzinfo is dt.UTC:  # every request's start time: no conversion, only the "+00:00" swapped
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    return _as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc_now_text() -> str:
    return format_utc(utc_now())


def parse_utc(text: str | None) -> dt.datetime | None:
    """The ledger's UTC text (format_utc) back to an aware datetime; None stays None."""
    return None if text is None else _as_utc(dt.datetime.fromisoformat(text.removesuffix("Z")))


def format_utc_or_none(moment: dt.datetime | None) -> str | None:
    return format_utc(moment) if moment else None
