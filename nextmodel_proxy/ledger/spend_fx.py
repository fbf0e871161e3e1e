"""Spend read receipt by receipt (not from the rollups) when the answer depends on each receipt: in another
currency, converted at the rate of each receipt's own day (the rate it stored when that is the currency it
recorded, else the dated fx rate of its day), and split by usage_source (upstream / cache / estimated / none).

Grouped in SQL by (group, usage source, day, recorded currency and rate), so the conversion is one exact
multiplication per distinct rate: the total equals the sum of the CSV's billed_cost_display to the digit."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from nextmodel_proxy.ledger.receipts import ReceiptFilter
from nextmodel_proxy.ledger.spend import SPEND_BY, SpendRow, spend_row
from nextmodel_proxy.pricing import convert

_SUMS = (
    "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cache_write_tokens), "
    "SUM(reasoning_tokens), SUM(upstream_cost_pusd), SUM(billed_cost_pusd), SUM(fresh_cost_pusd), "
    "SUM(savings_pusd), SUM(billed_cost_pusd IS NULL)"
)

# (currency code, day) -> units per USD, or None when there is no rate for it
RateOf = Callable[[str, dt.date], Decimal | None]


class NoRate(ValueError):
    """A receipt's day has no rate for the requested currency."""


@dataclass(frozen=True, slots=True)
class FxSpendRow:
    row: SpendRow
    usage_source: str | None  # None unless split by usage source
    billed_converted: Decimal  # billed cost in the requested currency, exact


def spend_converted(
    conn: sqlite3.Connection,
    by: str,
    filters: ReceiptFilter,
    code: str,
    rate_of: RateOf,
    *,
    split_usage_source: bool = False,
) -> tuple[list[FxSpendRow], set[Decimal]]:
    """Totals per group (and usage source) with billed converted into `code` receipt by receipt, and the
    set of rates that conversion used."""
    if by not in SPEND_BY:
        raise ValueError(f"--by must be one of {', '.join(SPEND_BY)}")
    where, params = filters.where()
    source = "usage_source" if split_usage_source else "NULL"
    sql = (
        f"SELECT {SPEND_BY[by][1]}, {source}, substr(created_utc, 1, 10), display_currency, display_rate, "
        f"{_SUMS} FROM receipts WHERE {where} GROUP BY 1, 2, 3, 4, 5"
    )
    out: dict[tuple[str | None, str | None], FxSpendRow] = {}
    rates: set[Decimal] = set()
    for group, usage_source, day, recorded, recorded_rate, *sums in conn.execute(sql, params):
        row = spend_row(group, sums)
        billed = row.billed_usd
        if billed:
            rate = (
                Decimal(recorded_rate)
                if recorded == code and recorded_rate
                else rate_of(code, dt.date.fromisoformat(day))
            )
            if rate is None:
                raise NoRate(f"no {code} rate for {day} (add it to fx.rates)")
            converted = convert(billed, rate)
            rates.add(rate)
        else:
            converted = Decimal(0)
        key = (group, usage_source)
        if key in out:
            prev = out[key]
            out[key] = FxSpendRow(prev.row + row, usage_source, prev.billed_converted + converted)
        else:
            out[key] = FxSpendRow(row, usage_source, converted)
    rows = sorted(out.values(), key=lambda r: (-r.row.billed_usd, r.row.group or "", r.usage_source or ""))
    return rows, rates
