"""The rollups the writer keeps, folded in Python from each batch's own rows and upserted in its transaction.

- spend_daily (m002): every attribution per UTC day, for `nmproxy spend`.
- spend_q15 / spend_d (m050): every attribution, per quarter hour and per UTC day. A range's totals and
  breakdowns read whole UTC days from spend_d and only the partial days at its edges from spend_q15, so the
  rows read stay bounded by the number of days, not by quarter hours. Quarter hours make any zone's day edges
  exact: every UTC offset in use is a multiple of 15 minutes (Asia/Kolkata +5:30, Asia/Kathmandu +5:45).
- series_q15: billed and count per quarter hour, model and served mode only, for the daily charts in any zone.
- latency_q15 / latency_key_q15: histograms of latency and time to first token (bins below), all keys / per key.

The fold is the Python twin of the SQL that filled these tables before (m002's and m050's backfills, frozen in
ledger/schema.py): the same buckets (the first 10 characters of created_utc for the day; its first 14 plus the
quarter of its minute for the quarter hour), attribution with NULL read as '', latency bins `value <= edge`,
ttft only for streams, integer sums. tests/test_ledger_rollups.py holds the two to equality. Folding the rows
already in hand saves re-reading them, the GROUP BY sorts and a query for the batch's first seq.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from nextmodel_proxy.ledger.receipts import CONTENT_COLUMNS

# Upper edges (ms) of the latency histogram bins; the last bin is everything above the last edge.
LATENCY_EDGES_MS: tuple[float, ...] = (
    1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 60000, 120000,
)  # fmt: skip

_ATTRIBUTION = ("project", "team", "key_id", "model", "provider", "served_mode")
_TOKENS_AND_MONEY = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "upstream_cost_pusd",
    "billed_cost_pusd",
    "fresh_cost_pusd",
    "savings_pusd",
)
# The wide tables' sums, in the order fold() builds them.
_WIDE_SUMS = (
    "n",
    "errors",
    "estimated",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "upstream_pusd",
    "billed_pusd",
    "fresh_pusd",
    "savings_pusd",
    "unknown_cost",
)
_DAILY_SUMS = tuple(s for s in _WIDE_SUMS if s not in ("errors", "estimated"))
_AT = {column: i for i, column in enumerate(CONTENT_COLUMNS)}
_CREATED = _AT["created_utc"]
_MODE = _AT["served_mode"]
_USAGE = _AT["usage_source"]
_BILLED = _AT["billed_cost_pusd"]
_LATENCY = _AT["latency_ms"]
_TTFT = _AT["ttft_ms"]
_STREAM = _AT["stream"]
_attribution = itemgetter(*(_AT[c] for c in _ATTRIBUTION))
_amounts = itemgetter(*(_AT[c] for c in _TOKENS_AND_MONEY))


def _upsert(table: str, keys: Sequence[str], sums: Sequence[str]) -> str:
    columns = [*keys, *sums]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{s} = {s} + excluded.{s}" for s in sums)
    )


_WIDE_KEYS = ("bucket", *_ATTRIBUTION)
_SPEND_DAILY = _upsert("spend_daily", ("day", *_ATTRIBUTION), _DAILY_SUMS)
_SPEND_Q15 = _upsert("spend_q15", _WIDE_KEYS, _WIDE_SUMS)
_SPEND_D = _upsert("spend_d", _WIDE_KEYS, _WIDE_SUMS)
_SERIES_Q15 = _upsert("series_q15", ("bucket", "model", "served_mode"), ("n", "billed_pusd"))
_LATENCY_Q15 = _upsert("latency_q15", ("bucket", "kind", "bin"), ("n",))
_LATENCY_KEY_Q15 = _upsert("latency_key_q15", ("key_id", "bucket", "kind", "bin"), ("n",))
# a spend_d row's sums without errors and estimated are its spend_daily row's; series_q15 takes n and billed
_DAILY_OF_WIDE = itemgetter(*(_WIDE_SUMS.index(s) for s in _DAILY_SUMS))
_SERIES_OF_WIDE = itemgetter(_WIDE_SUMS.index("n"), _WIDE_SUMS.index("billed_pusd"))


def quarter_hour(created_utc: str) -> str:
    """'YYYY-MM-DDTHH:' plus the minute rounded down to a quarter: '00', '15', '30' or '45'."""
    minute = created_utc[14:16]
    if minute < "15":
        return created_utc[:14] + "00"
    if minute < "30":
        return created_utc[:14] + "15"
    return created_utc[:14] + ("30" if minute < "45" else "45")


def fold(rows: Sequence[Sequence[Any]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """(upsert statement, parameter rows) for every rollup table the rows add to."""
    # (quarter hour, day, served_mode as stored, attribution with NULL as '') -> each receipt's sums
    wide: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    latency: dict[tuple[Any, ...], int] = {}  # (key_id, quarter hour, kind, bin) -> n
    for row in rows:
        created = row[_CREATED]
        q15 = quarter_hour(created)
        mode = row[_MODE]
        attribution = _attribution(row)
        if None in attribution:
            attribution = tuple("" if v is None else v for v in attribution)
        amounts = _amounts(row)
        if None in amounts:
            amounts = tuple(0 if v is None else v for v in amounts)
        sums = (1, mode == "error", row[_USAGE] == "estimated", *amounts, row[_BILLED] is None)
        key = (q15, created[:10], mode, attribution)
        group = wide.get(key)
        if group is None:
            wide[key] = [sums]
        else:
            group.append(sums)
        ms = row[_LATENCY]
        if ms is not None and ms == ms:  # a NaN is stored as NULL
            k = (attribution[2], q15, "latency", bisect_left(LATENCY_EDGES_MS, ms))
            latency[k] = latency.get(k, 0) + 1
        if row[_STREAM] == 1:
            ms = row[_TTFT]
            if ms is not None and ms == ms:
                k = (attribution[2], q15, "ttft", bisect_left(LATENCY_EDGES_MS, ms))
                latency[k] = latency.get(k, 0) + 1
    return _statements(wide, latency)


def _statements(
    wide: dict[tuple[Any, ...], list[tuple[Any, ...]]], latency: dict[tuple[Any, ...], int]
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    # plain loops and tuple concatenation: this runs for every commit, mostly with one receipt
    q15_rows = []
    by_day: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    series: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for (q15, day, mode, attribution), group in wide.items():
        sums = group[0] if len(group) == 1 else _total(group)
        q15_rows.append((q15, *attribution) + sums)
        _add_to(by_day, (day, *attribution), sums)
        _add_to(series, (q15, attribution[3], mode), _SERIES_OF_WIDE(sums))  # served_mode as stored
    day_rows, daily_rows = [], []
    for key, sums in by_day.items():
        day_rows.append(key + sums)
        daily_rows.append(key + _DAILY_OF_WIDE(sums))
    series_rows = [key + sums for key, sums in series.items()]
    all_keys: dict[tuple[Any, ...], int] = {}
    key_rows = []
    for key, n in latency.items():
        key_rows.append((*key, n))
        key = key[1:]
        all_keys[key] = all_keys.get(key, 0) + n
    return [
        (_SPEND_Q15, q15_rows),
        (_SPEND_D, day_rows),
        (_SPEND_DAILY, daily_rows),
        (_SERIES_Q15, series_rows),
        (_LATENCY_Q15, [(*key, n) for key, n in all_keys.items()]),
        (_LATENCY_KEY_Q15, key_rows),
    ]


def _total(group: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(map(sum, zip(*group, strict=True)))


def _add_to(
    totals: dict[tuple[Any, ...], tuple[Any, ...]], key: tuple[Any, ...], sums: tuple[Any, ...]
) -> None:
    have = totals.get(key)
    totals[key] = sums if have is None else _total([have, sums])


def write(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Fold the rows into every rollup table (inside the caller's transaction)."""
    for statement, params in fold(rows):
        if params:
            conn.executemany(statement, params)
