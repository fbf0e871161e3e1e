"""Budget definitions (SQLite rows and providers.yaml), UTC periods, exact limit arithmetic, spent from receipts."""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

from nextmodel_proxy.access.keys import bump_changes, key_lineage
from nextmodel_proxy.access.rules import PERIODS
from nextmodel_proxy.config import Config
from nextmodel_proxy.pricing import PUSD_PER_USD, pusd_in
from nextmodel_proxy.timespec import format_utc, format_utc_or_none, utc_now

SCOPES = ("key", "project", "team")
# receipts column that attributes spend to each scope (fixed names, never user input).
_RECEIPT_COLUMN = {"key": "key_id", "project": "project", "team": "team"}
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}


class UnknownCurrency(ValueError):
    """A budget's currency has no rate in currency.rates."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit on one key, project or team for one period, in its own currency."""

    budget_id: str
    scope: str
    scope_id: str
    amount: Decimal
    currency: str
    period: str
    source: str = "db"  # 'db' (nmproxy budgets/keys) or 'config' (providers.yaml)

    def describe(self) -> str:
        return f"{_ADJECTIVE[self.period]} budget of {self.scope} {self.scope_id!r}"


def period_bounds(period: str, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(start, reset_at) of the UTC calendar period holding `now`; weeks start Monday; total is (None, None)."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + dt.timedelta(days=1)
    if period == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        return start, start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    if period == "total":
        return None, None
    raise ValueError(f"unknown budget period {period!r}")


def rate_of(currency: str, rates: Mapping[str, Decimal]) -> Decimal:
    """Units of `currency` per USD."""
    if currency == "USD":
        return rates.get("USD", Decimal(1))
    if currency not in rates:
        raise UnknownCurrency(f"currency {currency!r} has no rate in currency.rates")
    return rates[currency]


def compare_to_limit(used_pusd: int, budget: Budget, currency_rate: Decimal) -> int:
    """-1, 0 or 1 as `used` is below, at or above the limit, compared exactly in the budget's currency."""
    with localcontext(prec=100):
        used, limit = Decimal(used_pusd) * currency_rate, budget.amount * PUSD_PER_USD
    return (used > limit) - (used < limit)


def config_budgets(config: Config | None) -> list[Budget]:
    """Budgets declared under projects:/teams: in providers.yaml."""
    if config is None:
        return []
    out = []
    for scope, entries in (("project", config.projects), ("team", config.teams)):
        for name, entry in entries.items():
            if entry.budget is not None:
                b = entry.budget
                out.append(
                    Budget(f"config:{scope}:{name}", scope, name, b.amount, b.currency, b.period, "config")
                )
    return out


def set_budget(
    conn: sqlite3.Connection,
    scope: str,
    scope_id: str,
    amount: Decimal,
    currency: str,
    period: str,
    *,
    now: dt.datetime | None = None,
) -> Budget:
    """Create or replace the budget for (scope, id, period); the caller owns the transaction."""
    if scope not in SCOPES or period not in PERIODS:
        raise ValueError(f"scope must be one of {SCOPES} and period one of {PERIODS}")
    if not amount.is_finite() or amount < 0:
        raise ValueError("a budget amount must be a non-negative number")
    conn.execute(
        "INSERT INTO budgets (budget_id, scope, scope_id, amount, currency, period, created_at)"
        " VALUES (?,?,?,?,?,?,?) ON CONFLICT (scope, scope_id, period) DO UPDATE SET"
        " amount = excluded.amount, currency = excluded.currency",
        (
            "bud_" + secrets.token_hex(6),
            scope,
            scope_id,
            str(amount),
            currency,
            period,
            format_utc(now or utc_now()),
        ),
    )
    bump_changes(conn)
    return next(b for b in list_budgets(conn) if (b.scope, b.scope_id, b.period) == (scope, scope_id, period))


def list_budgets(conn: sqlite3.Connection) -> list[Budget]:
    rows = conn.execute(
        "SELECT budget_id, scope, scope_id, amount, currency, period FROM budgets"
        " ORDER BY scope, scope_id, period"
    ).fetchall()
    return [Budget(r[0], r[1], r[2], Decimal(r[3]), r[4], r[5]) for r in rows]


def delete_budget(conn: sqlite3.Connection, budget_id: str) -> bool:
    deleted = conn.execute("DELETE FROM budgets WHERE budget_id = ?", (budget_id,)).rowcount
    if deleted:
        bump_changes(conn)
    return bool(deleted)


def all_budgets(conn: sqlite3.Connection, config: Config | None) -> list[Budget]:
    """Database budgets plus providers.yaml budgets; every currency must have a rate."""
    budgets = list_budgets(conn) + config_budgets(config)
    rates = config.currency.rates if config is not None else {"USD": Decimal(1)}
    for budget in budgets:
        try:
            rate_of(budget.currency, rates)
        except UnknownCurrency as exc:
            raise UnknownCurrency(f"{budget.describe()} ({budget.budget_id}): {exc}") from None
    return budgets


def spent_pusd(conn: sqlite3.Connection, scope: str, scope_id: str, start: dt.datetime | None) -> int:
    """Billed picodollars in receipts for this scope since `start` (a key counts the keys it was rotated from)."""
    ids = key_lineage(conn, scope_id) if scope == "key" else [scope_id]
    sql = (
        f"SELECT COALESCE(SUM(billed_cost_pusd), 0) FROM receipts"
        f" WHERE {_RECEIPT_COLUMN[scope]} IN ({','.join('?' * len(ids))})"
    )
    params: list[object] = list(ids)
    if start is not None:
        sql += " AND created_utc >= ?"
        params.append(format_utc(start))
    return int(conn.execute(sql, params).fetchone()[0])


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """One budget against its current period: amounts in the budget's currency, exact."""

    budget: Budget
    period_start: dt.datetime | None
    reset_at: dt.datetime | None
    spent_usd: Decimal
    spent: Decimal
    remaining: Decimal
    share_spent: Decimal


def usage_of(budget: Budget, spent: int, rates: Mapping[str, Decimal], now: dt.datetime) -> BudgetUsage:
    start, reset = period_bounds(budget.period, now)
    in_currency = pusd_in(rate_of(budget.currency, rates), spent)
    with localcontext(prec=100):
        share = in_currency / budget.amount if budget.amount else Decimal(1)
    return BudgetUsage(
        budget, start, reset, pusd_in(Decimal(1), spent), in_currency, budget.amount - in_currency, share
    )


def usage_json(usage: BudgetUsage) -> dict[str, Any]:
    """A budget's current period as JSON: exact decimal strings, amounts in the budget's currency."""
    b = usage.budget
    return {
        "budget_id": b.budget_id,
        "scope": b.scope,
        "scope_id": b.scope_id,
        "period": b.period,
        "currency": b.currency,
        "amount": f"{b.amount:f}",
        "spent": f"{usage.spent:f}",
        "spent_usd": f"{usage.spent_usd:f}",
        "remaining": f"{usage.remaining:f}",
        "share_spent": f"{usage.share_spent:.6f}",
        "period_start": format_utc_or_none(usage.period_start),
        "reset_at": format_utc_or_none(usage.reset_at),
        "source": b.source,
    }


def spend_against_budgets(
    conn: sqlite3.Connection, by: str, config: Config | None, now: dt.datetime | None = None
) -> list[BudgetUsage]:
    """Every budget on scope `by` ('key'|'project'|'team') with its spend in the current period."""
    now = now or utc_now()
    rates = config.currency.rates if config is not None else {"USD": Decimal(1)}
    out = []
    for budget in all_budgets(conn, config):
        if budget.scope == by:
            spent = spent_pusd(conn, budget.scope, budget.scope_id, period_bounds(budget.period, now)[0])
            out.append(usage_of(budget, spent, rates, now))
    return out


def format_amount(amount: Decimal, currency: str) -> str:
    """Exact but readable: at most 6 decimals (rounded down), at least 2."""
    shown = amount.quantize(Decimal("0.000001"), rounding=ROUND_FLOOR).normalize()
    if shown.as_tuple().exponent > -2:  # type: ignore[operator]
        shown = shown.quantize(Decimal("0.01"))
    return f"{shown:f} {currency}"
