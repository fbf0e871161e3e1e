"""Dashboard reads: totals, series and breakdowns over the rollups in ledger/rollups.py, in any time zone.

Every figure comes from rollups kept by the writer with each receipt, never a scan of the receipts table.
A range's totals read whole UTC days from spend_d and only its partial edge days from spend_q15; a time zone's
day starts on a quarter-hour edge (all offsets in use are multiples of 15 minutes), so its totals are exact.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal

from nextmodel_proxy.ledger.rollups import LATENCY_EDGES_MS
from nextmodel_proxy.pricing import from_pusd

# --by value -> spend_q15 column
BREAKDOWN_BY = {
    "key": "key_id",
    "project": "project",
    "team": "team",
    "model": "model",
    "provider": "provider",
}
_SUMS = (
    "COALESCE(SUM(n), 0), COALESCE(SUM(errors), 0), COALESCE(SUM(estimated), 0), COALESCE(SUM(unknown_cost), 0), "
    "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
    "COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(upstream_pusd), 0), "
    "COALESCE(SUM(billed_pusd), 0), COALESCE(SUM(fresh_pusd), 0), COALESCE(SUM(savings_pusd), 0), "
    "COALESCE(SUM(CASE WHEN served_mode = 'exact-cache' THEN n END), 0), "
    "COALESCE(SUM(CASE WHEN served_mode = 'fresh' THEN n END), 0)"
)


class RangeError(ValueError):
    """A bad time zone or date range; `param` names the query parameter (the API answers 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name` (e.g. Asia/Kolkata), or RangeError."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise RangeError("tz", f"unknown time zone {name!r}; use an IANA name such as Europe/London")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RangeError(
            "tz", f"unknown time zone {name!r}; use an IANA name such as Europe/London"
        ) from None


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The UTC instant at which `day` starts in `tz`."""
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)


def bucket(instant: dt.datetime) -> str:
    """The rollup bucket text an instant falls in ('YYYY-MM-DDTHH:MM', minutes floored to a quarter hour)."""
    u = instant.astimezone(dt.UTC)
    return f"{u:%Y-%m-%dT%H}:{u.minute - u.minute % 15:02d}"


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) as UTC instants on quarter-hour edges, with the local days it covers (inclusive)."""

    start: dt.datetime
    end: dt.datetime
    first_day: dt.date
    last_day: dt.date
    tz: dt.tzinfo

    @classmethod
    def of_days(cls, first: dt.date, last: dt.date, tz: dt.tzinfo) -> Window:
        if last < first:
            raise RangeError("to", f"the range ends ({last}) before it starts ({first})")
        if (last - first).days > 3660:
            raise RangeError("from", "the range is longer than ten years")
        return cls(
            local_midnight(first, tz), local_midnight(last + dt.timedelta(days=1), tz), first, last, tz
        )

    def days(self) -> list[dt.date]:
        return [
            self.first_day + dt.timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)
        ]


@dataclass(frozen=True, slots=True)
class Totals:
    """Summed rollup rows; money exact USD."""

    group: str | None = None
    requests: int = 0
    errors: int = 0
    estimated: int = 0
    unknown_cost: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    upstream_usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    fresh_usd: Decimal = Decimal(0)
    savings_usd: Decimal = Decimal(0)
    exact_cache: int = 0
    fresh: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cache_hit_rate(self) -> Decimal | None:
        served = self.exact_cache + self.fresh
        return Decimal(self.exact_cache) / served if served else None

    @property
    def error_rate(self) -> Decimal | None:
        return Decimal(self.errors) / self.requests if self.requests else None

    @property
    def usd_per_request(self) -> Decimal | None:
        return self.billed_usd / self.requests if self.requests else None


def _totals(group: str | None, row: tuple[int, ...]) -> Totals:
    n, err, est, unk, p, c, cached, cw, r, up, billed, fresh, savings, hits, fresh_n = row
    return Totals(
        group, n, err, est, unk, p, c, cached, cw, r,
        from_pusd(up), from_pusd(billed), from_pusd(fresh), from_pusd(savings), hits, fresh_n,
    )  # fmt: skip


def _parts(start: dt.datetime, end: dt.datetime) -> list[tuple[str, str, str]]:
    """(table, first bucket, end bucket) pieces covering [start, end): whole UTC days from spend_d, the rest
    (at most a day at each edge) from spend_q15."""
    first_day = (start.astimezone(dt.UTC) + dt.timedelta(days=1) - dt.timedelta(microseconds=1)).date()
    end_day = end.astimezone(dt.UTC).date()
    if first_day >= end_day:
        return [("spend_q15", bucket(start), bucket(end))]
    midnight_first = dt.datetime.combine(first_day, dt.time(), dt.UTC)
    midnight_end = dt.datetime.combine(end_day, dt.time(), dt.UTC)
    parts = [("spend_d", first_day.isoformat(), end_day.isoformat())]
    if start < midnight_first:
        parts.append(("spend_q15", bucket(start), bucket(midnight_first)))
    if midnight_end < end:
        parts.append(("spend_q15", bucket(midnight_end), bucket(end)))
    return parts


def _sums(
    conn: sqlite3.Connection, start: dt.datetime, end: dt.datetime, key_id: str | None, group: str | None
) -> dict[str | None, list[int]]:
    """Summed rollup columns per group value (one group, None, when `group` is None)."""
    out: dict[str | None, list[int]] = {}
    for table, lo, hi in _parts(start, end):
        where, params = "bucket >= ? AND bucket < ?", [lo, hi]
        if key_id is not None:
            where += " AND key_id = ?"
            params.append(key_id)
        head = f"{group}, " if group else "NULL, "
        tail = " GROUP BY 1" if group else ""
        for g, *values in conn.execute(f"SELECT {head}{_SUMS} FROM {table} WHERE {where}{tail}", params):
            if not group and not values[0]:
                continue
            have = out.get(g)
            out[g] = values if have is None else [a + b for a, b in zip(have, values, strict=True)]
    return out


def totals(
    conn: sqlite3.Connection, start: dt.datetime, end: dt.datetime, key_id: str | None = None
) -> Totals:
    """Everything in [start, end) (both on quarter-hour edges); only key_id's receipts when given."""
    row = _sums(conn, start, end, key_id, None).get(None)
    return _totals(None, tuple(row)) if row else Totals()


def breakdown(
    conn: sqlite3.Connection, by: str, start: dt.datetime, end: dt.datetime, key_id: str | None = None
) -> list[Totals]:
    """Totals per key/project/team/model/provider, largest billed first; '' attribution reads as None."""
    sums = _sums(conn, start, end, key_id, BREAKDOWN_BY[by])
    out = [_totals(g or None, tuple(values)) for g, values in sums.items()]
    return sorted(out, key=lambda t: (-t.billed_usd, t.group or ""))


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Upper edges (ms) of the histogram bins holding the 50th and 95th percentile; None without samples.
    An edge of None with samples means above the last edge."""

    samples: int
    p50_ms: float | None
    p95_ms: float | None


def percentiles(
    conn: sqlite3.Connection, kind: str, start: dt.datetime, end: dt.datetime, key_id: str | None = None
) -> Percentiles:
    if key_id is None:
        sql, params = "SELECT bin, SUM(n) FROM latency_q15 WHERE kind = ?", [kind]
    else:
        sql, params = "SELECT bin, SUM(n) FROM latency_key_q15 WHERE key_id = ? AND kind = ?", [key_id, kind]
    sql += " AND bucket >= ? AND bucket < ? GROUP BY bin"
    counts = dict(conn.execute(sql, [*params, bucket(start), bucket(end)]).fetchall())
    total = sum(counts.values())
    return Percentiles(total, _edge_at(counts, total, 0.50), _edge_at(counts, total, 0.95))


def _edge_at(counts: dict[int, int], total: int, share: float) -> float | None:
    if not total:
        return None
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= share * total:
            return float(LATENCY_EDGES_MS[b]) if b < len(LATENCY_EDGES_MS) else float("inf")
    return float("inf")


@dataclass(slots=True)
class DailySeries:
    """Per local day: billed USD by top model (+ 'other'), and fresh vs exact-cache request counts."""

    days: list[str]
    models: list[str]
    spend: dict[str, list[Decimal]] = field(default_factory=dict)
    fresh: list[int] = field(default_factory=list)
    exact_cache: list[int] = field(default_factory=list)


def daily(conn: sqlite3.Connection, window: Window, key_id: str | None = None, top: int = 5) -> DailySeries:
    """Day buckets in the window's zone: each local day is a range of quarter hours, summed by SQLite."""
    days = window.days()
    bounds = ", ".join("(?, ?, ?)" for _ in days)
    params: list[object] = []
    for i, day in enumerate(days):
        params += [
            i,
            bucket(local_midnight(day, window.tz)),
            bucket(local_midnight(day + dt.timedelta(days=1), window.tz)),
        ]
    # All keys: the narrow series table. One key: its own rows of spend_q15 (through the key_id index).
    table, where = "series_q15", ""
    if key_id is not None:
        table, where = "spend_q15 INDEXED BY spend_q15_key", "key_id = ? AND "
        params.append(key_id)
    rows = conn.execute(
        f"WITH days(i, lo, hi) AS (VALUES {bounds}) "
        "SELECT days.i, model, SUM(billed_pusd), SUM(CASE WHEN served_mode = 'fresh' THEN n ELSE 0 END), "
        f"SUM(CASE WHEN served_mode = 'exact-cache' THEN n ELSE 0 END) FROM days JOIN {table} "
        f"ON {where}bucket >= days.lo AND bucket < days.hi GROUP BY days.i, model",
        params,
    ).fetchall()
    by_model: dict[str, int] = {}
    for _, model, billed, _, _ in rows:
        by_model[model] = by_model.get(model, 0) + (billed or 0)
    ranked = sorted(by_model, key=lambda m: (-by_model[m], m))
    shown = set(ranked[:top])
    names = [m or "(none)" for m in ranked[:top]] + (["other"] if len(ranked) > top else [])
    series = DailySeries([d.isoformat() for d in days], names)
    pusd = {name: [0] * len(days) for name in names}
    series.fresh, series.exact_cache = [0] * len(days), [0] * len(days)
    for i, model, billed, fresh, hits in rows:
        pusd[(model or "(none)") if model in shown else "other"][i] += billed or 0
        series.fresh[i] += fresh
        series.exact_cache[i] += hits
    series.spend = {name: [from_pusd(v) for v in values] for name, values in pusd.items()}
    return series
