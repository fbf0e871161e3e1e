"""Spend totals grouped by project/team/key/model/provider/day/mode, read from the per-day rollups.

Whole UTC days come from spend_daily (one row per day and attribution, kept by the ledger writer); only the
partial days at the edges of a --since/--until window that does not start or end at midnight UTC are summed
from the receipts table (via its created_utc index), so the cost stays bounded by one day of receipts at
each edge however large the ledger grows.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, replace
from decimal import Decimal

from nextmodel_proxy.ledger.receipts import ReceiptFilter
from nextmodel_proxy.pricing import from_pusd
from nextmodel_proxy.timespec import format_utc

# --by value -> (spend_daily column, receipts expression)
SPEND_BY: dict[str, tuple[str, str]] = {
    "project": ("project", "project"),
    "team": ("team", "team"),
    "key": ("key_id", "key_id"),
    "model": ("model", "model"),
    "provider": ("provider", "provider"),
    "day": ("day", "substr(created_utc, 1, 10)"),
    "mode": ("served_mode", "served_mode"),
}
_RAW_SUMS = (
    "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cache_write_tokens), "
    "SUM(reasoning_tokens), SUM(upstream_cost_pusd), SUM(billed_cost_pusd), SUM(fresh_cost_pusd), "
    "SUM(savings_pusd), SUM(billed_cost_pusd IS NULL)"
)
_ROLLUP_SUMS = (
    "SUM(n), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cache_write_tokens), "
    "SUM(reasoning_tokens), SUM(upstream_pusd), SUM(billed_pusd), SUM(fresh_pusd), SUM(savings_pusd), "
    "SUM(unknown_cost)"
)


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One group's totals; money is exact USD. Receipts with an unknown cost add 0 and count in unknown_cost."""

    group: str | None
    count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    upstream_usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    fresh_usd: Decimal = Decimal(0)
    savings_usd: Decimal = Decimal(0)
    unknown_cost: int = 0

    def __add__(self, other: SpendRow) -> SpendRow:
        sums = {name: getattr(self, name) + getattr(other, name) for name in _SUMMED}
        return replace(self, **sums)


_SUMMED = (
    "count",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "upstream_usd",
    "billed_usd",
    "fresh_usd",
    "savings_usd",
    "unknown_cost",
)


def spend(conn: sqlite3.Connection, by: str, filters: ReceiptFilter | None = None) -> list[SpendRow]:
    """Totals per group, ordered by billed cost (largest first), then group name."""
    if by not in SPEND_BY:
        raise ValueError(f"--by must be one of {', '.join(SPEND_BY)}")
    filters = filters or ReceiptFilter()
    since, until = filters.since, filters.until
    first_day, end_day = _whole_days(since, until)
    groups: dict[str | None, SpendRow] = {}
    if first_day is None or end_day is None or first_day < end_day:
        _merge(groups, _rollup(conn, by, first_day, end_day, filters))
        edges = [(since, _midnight(first_day)), (_midnight(end_day), until)]
    else:  # the window lies inside one day: no whole day to take from the rollups
        edges = [(since, until)]
    for lo, hi in edges:
        if lo is not None and hi is not None and lo < hi:
            _merge(groups, _raw(conn, by, replace(filters, since=lo, until=hi)))
    return sorted(groups.values(), key=lambda r: (-r.billed_usd, r.group or ""))


def spend_total(rows: list[SpendRow]) -> SpendRow:
    total = SpendRow(group=None)
    for row in rows:
        total = total + row
    return total


def _whole_days(since: dt.datetime | None, until: dt.datetime | None) -> tuple[str | None, str | None]:
    """First whole day on or after `since`, and the day `until` falls in (exclusive); None = unbounded."""
    first = end = None
    if since is not None:
        day = format_utc(since)[:10]
        first = day if format_utc(since)[10:] == "T00:00:00.000000Z" else _next_day(day)
    if until is not None:
        end = format_utc(until)[:10]
    return first, end


def _next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _midnight(day: str | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)


def _rollup(
    conn: sqlite3.Connection, by: str, first: str | None, end: str | None, filters: ReceiptFilter
) -> list[SpendRow]:
    # Attribution filters keep their column names in spend_daily; only the time bounds become days.
    where, params = replace(filters, since=None, until=None).where()
    if first is not None:
        where += " AND day >= ?"
        params.append(first)
    if end is not None:
        where += " AND day < ?"
        params.append(end)
    column = SPEND_BY[by][0]
    rows = conn.execute(f"SELECT {column}, {_ROLLUP_SUMS} FROM spend_daily WHERE {where} GROUP BY 1", params)
    # '' stands for NULL attribution in the rollups (see m002), except for the day itself.
    return [spend_row(None if g == "" and by != "day" else g, rest) for g, *rest in rows]


def _raw(conn: sqlite3.Connection, by: str, filters: ReceiptFilter) -> list[SpendRow]:
    where, params = filters.where()
    rows = conn.execute(
        f"SELECT {SPEND_BY[by][1]}, {_RAW_SUMS} FROM receipts WHERE {where} GROUP BY 1", params
    )
    return [spend_row(g, rest) for g, *rest in rows]


def spend_row(group: str | None, sums: list[int | None]) -> SpendRow:
    """A SpendRow from the summed columns of _RAW_SUMS / _ROLLUP_SUMS (NULL sums read as 0)."""
    n, p, c, cached, cw, reasoning, up, billed, fresh, savings, unknown = (v or 0 for v in sums)
    return SpendRow(
        group,
        n,
        p,
        c,
        cached,
        cw,
        reasoning,
        from_pusd(up),
        from_pusd(billed),
        from_pusd(fresh),
        from_pusd(savings),
        unknown,
    )


def _merge(groups: dict[str | None, SpendRow], rows: list[SpendRow]) -> None:
    for row in rows:
        groups[row.group] = groups[row.group] + row if row.group in groups else row
