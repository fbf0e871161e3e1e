"""BudgetBook: in-memory spent + reserved per budget period; atomic reserve, settle with the receipt's cost."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from nextmodel_proxy.access.budget_store import (
    Budget,
    BudgetUsage,
    UnknownCurrency,
    all_budgets,
    compare_to_limit,
    format_amount,
    period_bounds,
    rate_of,
    spent_pusd,
    usage_of,
)
from nextmodel_proxy.access.keys import read_changes
from nextmodel_proxy.config import Config
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.pricing import pusd_in, to_pusd_ceiling
from nextmodel_proxy.timespec import format_utc, utc_now

log = logging.getLogger(__name__)

# (scope, scope_id, period, period start or 'total'): spend is per window, shared by budgets on it.
Window = tuple[str, str, str, str]
WARN_SHARE = Decimal("0.8")


class Attributed(Protocol):
    """auth.Principal and auth.Attribution both fit."""

    @property
    def key_id(self) -> str | None: ...
    @property
    def project(self) -> str | None: ...
    @property
    def team(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """Worst-case cost held against every applicable budget window until settled or released."""

    id: int
    windows: tuple[Window, ...]
    amount_pusd: int


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """A budget's current period plus the amount held by requests in flight (in the budget's currency)."""

    usage: BudgetUsage
    reserved: Decimal
    rate: Decimal = Decimal(1)  # units of the budget's currency per USD

    @property
    def remaining_usd(self) -> Decimal:
        return self.usage.budget.amount / self.rate - self.usage.spent_usd


_NO_HOLD = Reservation(0, (), 0)  # settling it changes nothing (it is never in the open holds)


def window_of(budget: Budget, now: dt.datetime) -> Window:
    start = period_bounds(budget.period, now)[0]
    return (budget.scope, budget.scope_id, budget.period, format_utc(start) if start else "total")


class BudgetBook:
    """All budget checks happen in memory under one lock, so concurrent reservations cannot overshoot."""

    def __init__(
        self, rates: Mapping[str, Decimal], budgets: Sequence[Budget] = (), config: Config | None = None
    ) -> None:
        self._rates = rates
        self._config = config  # its projects/teams budgets join the DB's on every reload
        self._lock = threading.Lock()
        self._by_scope: dict[tuple[str, str], list[Budget]] = {}
        self._spent: dict[Window, int] = defaultdict(int)  # a window first seen by reserve() is a new period
        self._reserved: dict[Window, int] = defaultdict(int)
        self._open: dict[int, Reservation] = {}
        self._ids = itertools.count(1)
        self._changes = -1
        self._install(budgets)

    @classmethod
    def load(
        cls, conn: sqlite3.Connection, config: Config | None, now: dt.datetime | None = None
    ) -> BudgetBook:
        """Budgets from the DB and config, spent in their current periods summed from receipts."""
        rates = config.currency.rates if config is not None else {"USD": Decimal(1)}
        book = cls(rates, config=config)
        book.refresh_if_changed(conn, now=now)
        return book

    def _install(self, budgets: Sequence[Budget]) -> None:
        by_scope: dict[tuple[str, str], list[Budget]] = defaultdict(list)
        for budget in budgets:
            by_scope[(budget.scope, budget.scope_id)].append(budget)
        self._by_scope = dict(by_scope)

    def refresh_if_changed(self, conn: sqlite3.Connection, now: dt.datetime | None = None) -> bool:
        """Reload definitions when keys/budgets changed; windows not yet in memory get spent from receipts."""
        changes = read_changes(conn)
        if changes == self._changes:
            return False
        try:
            budgets = all_budgets(conn, self._config)
        except UnknownCurrency as exc:
            if self._changes < 0:
                raise
            log.error("budgets not reloaded, keeping the previous ones: %s", exc)
            self._changes = changes
            return False
        now = now or utc_now()
        with self._lock:
            known = set(self._spent)
        loaded = {}
        for budget in budgets:
            window = window_of(budget, now)
            if window not in known and window not in loaded:
                loaded[window] = spent_pusd(
                    conn, budget.scope, budget.scope_id, period_bounds(budget.period, now)[0]
                )
        with self._lock:
            for window, spent in loaded.items():
                self._spent.setdefault(window, spent)
            self._install(budgets)
        self._changes = changes
        return True

    def applicable(self, who: Attributed) -> list[Budget]:
        """The key's, the project's and the team's budgets."""
        if not self._by_scope:  # no budgets at all: the common case costs one check per request
            return []
        out: list[Budget] = []
        for scope, scope_id in (("key", who.key_id), ("project", who.project), ("team", who.team)):
            if scope_id is not None:
                out.extend(self._by_scope.get((scope, scope_id), ()))
        return out

    def reserve(
        self, who: Attributed, worst_case_usd: Decimal, now: dt.datetime | None = None
    ) -> Reservation:
        """Hold `worst_case_usd` on every applicable budget, or raise 429 budget_exceeded (holding nothing)."""
        if not self._by_scope:
            return _NO_HOLD
        now = now or utc_now()
        amount = to_pusd_ceiling(worst_case_usd)
        with self._lock:
            windows: dict[Window, None] = {}
            for budget in self.applicable(who):
                window = window_of(budget, now)
                used = self._spent[window] + self._reserved[window]
                rate = rate_of(budget.currency, self._rates)
                # Refuse once exhausted (even a zero estimate), or when the worst case would pass the limit.
                if (
                    compare_to_limit(used, budget, rate) >= 0
                    or compare_to_limit(used + amount, budget, rate) > 0
                ):
                    raise self._exceeded(budget, window, amount, now)
                windows[window] = None
            for window in windows:
                self._reserved[window] += amount
            reservation = Reservation(next(self._ids), tuple(windows), amount)
            self._open[reservation.id] = reservation
        return reservation

    def settle(self, reservation: Reservation, billed_cost_pusd: int | None) -> None:
        """Replace the hold by the receipt's billed_cost_pusd (None = unknown = 0, as the receipts sum it)."""
        with self._lock:
            if self._open.pop(reservation.id, None) is None:
                return  # already settled or released: never count twice
            for window in reservation.windows:
                self._reserved[window] -= reservation.amount_pusd
                self._spent[window] += billed_cost_pusd or 0

    def release(self, reservation: Reservation) -> None:
        """Drop the hold of a request that failed before costing anything."""
        self.settle(reservation, 0)

    def usages(self, who: Attributed, now: dt.datetime | None = None) -> list[BudgetUsage]:
        """Every applicable budget against its current period (settled spend, not holds in flight)."""
        now = now or utc_now()
        with self._lock:
            return [
                usage_of(b, self._spent[window_of(b, now)], self._rates, now) for b in self.applicable(who)
            ]

    def snapshot(self, now: dt.datetime | None = None) -> list[BudgetLine]:
        """Every budget against its current period, with what requests in flight hold on it (dashboard)."""
        now = now or utc_now()
        with self._lock:
            budgets = [b for group in self._by_scope.values() for b in group]
            return [
                BudgetLine(
                    usage_of(b, self._spent[window_of(b, now)], self._rates, now),
                    pusd_in(rate_of(b.currency, self._rates), self._reserved[window_of(b, now)]),
                    rate_of(b.currency, self._rates),
                )
                for b in sorted(budgets, key=lambda b: (b.scope, b.scope_id, b.period))
            ]

    def status(self, who: Attributed, now: dt.datetime | None = None) -> BudgetUsage | None:
        """The applicable budget with the largest share spent (for the headers), or None without budgets."""
        return max(self.usages(who, now), key=lambda u: u.share_spent, default=None)

    def _exceeded(self, budget: Budget, window: Window, amount: int, now: dt.datetime) -> ProxyError:
        rate = rate_of(budget.currency, self._rates)
        cur = budget.currency
        spent, held = pusd_in(rate, self._spent[window]), pusd_in(rate, self._reserved[window])
        reset = period_bounds(budget.period, now)[1]
        when = f"It resets at {format_utc(reset)}." if reset else "It is a total budget and does not reset."
        message = (
            f"Budget exceeded: the {budget.describe()} is {format_amount(budget.amount, cur)}; spent "
            f"{format_amount(spent, cur)}, {format_amount(held, cur)} reserved by requests in flight, and "
            f"this request could cost up to {format_amount(pusd_in(rate, amount), cur)}. {when}"
        )
        # Retrying cannot help before the reset; the OpenAI SDKs obey x-should-retry instead of backing off.
        return ProxyError(
            429, message, "budget_exceeded", type="budget_exceeded", headers={"x-should-retry": "false"}
        )


def budget_headers(usage: BudgetUsage | None) -> dict[str, str]:
    """x-nextmodel-budget-remaining always (when a budget applies); -warning once 80% is spent."""
    if usage is None:
        return {}
    remaining = max(usage.remaining, Decimal(0))
    headers = {"x-nextmodel-budget-remaining": format_amount(remaining, usage.budget.currency)}
    if usage.share_spent >= WARN_SHARE:
        percent = int(min(usage.share_spent, Decimal(1)) * 100)
        headers["x-nextmodel-budget-warning"] = f"{percent}% of the {usage.budget.describe()} is spent"
    return headers
